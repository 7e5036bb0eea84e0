"""Resident memory growth per trained model: the kit's optimizers and engine against Keras' own.

Trains the same small model (64-[100]x2-10, 2 epochs of 2,000 samples, evaluated on a
validation split each epoch) again and again in one process: with `fit` and Keras' SGD,
with `fit` and the kit's SGD (both with `clear_session()` before each model, as
keras-tuner does), with the kit's engine one model at a time (`train_variants`), and in
populations of 20 models trained together (what a search does now, without
`clear_session()`: one garbage collection per population). After a warm-up, it reports
the least-squares slope of resident memory over the models, in MiB per model, and on
TensorFlow how many entries each model left in TensorFlow's process-wide gradient
registry (each one pins a traced graph). Target: no growth.

    python benchmarks/memory.py            # KERAS_BACKEND=jax python ... for JAX
"""

import gc
import os
import random
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's coursekit

import keras  # noqa: E402
import numpy as np  # noqa: E402

from coursekit import optimizers  # noqa: E402
from coursekit.training import Variant, train_variants  # noqa: E402
from tuning.search import resident_memory_mb  # noqa: E402

MODELS, WARM_UP = 40, 5


def registry_size():
    """Entries in TensorFlow's gradient registry (0 on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return 0
    from tensorflow.python.framework import ops as tf_ops

    return len(tf_ops._gradient_registry._registry)


def new_model(make_optimizer, width):
    keras.backend.clear_session()
    model = keras.Sequential(
        [
            keras.Input((width,)),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(make_optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def with_fit(make_optimizer):
    def train(x, y):
        model = new_model(make_optimizer, x.shape[1])
        model.fit(x, y, batch_size=100, epochs=2, validation_data=(x[:500], y[:500]), verbose=0)

    return train


def with_engine(x, y):
    model = new_model(lambda: optimizers.SGD(0.01), x.shape[1])
    evaluations = {"train_accuracy": (x, y), "val_accuracy": (x[:500], y[:500])}
    train_variants(
        [Variant("m", model, model.optimizer)], x, y, epochs=2, sampling="epoch", eval_sets=evaluations, verbose=0
    )


def with_population(x, y):
    """POPULATION models (each its own seed, learning rate and batches) trained as one population."""
    variants = []
    for member in range(POPULATION):
        random.seed(member)
        model = keras.Sequential([keras.Input((x.shape[1],)), *(keras.layers.Dense(n) for n in (100, 100, 10))])
        variants.append(Variant(f"m{member}", model, optimizers.SGD(0.01 * (1 + member)), seed=member))
    evaluations = {"train_accuracy": (x, y), "val_accuracy": (x[:500], y[:500])}
    train_variants(variants, x, y, epochs=2, sampling="epoch", eval_sets=evaluations, verbose=0, engine="population")


POPULATION = 20
WAYS = {  # name: (train one call, models per call)
    "fit, keras.optimizers.SGD": (with_fit(lambda: keras.optimizers.SGD(0.01)), 1),
    "fit, coursekit SGD": (with_fit(lambda: optimizers.SGD(0.01)), 1),
    "train_variants, coursekit SGD": (with_engine, 1),
    f"populations of {POPULATION}, coursekit SGD": (with_population, POPULATION),
}


def growth(train, x, y, per_call):
    """(MiB per model, registry entries per model) over MODELS models after WARM_UP."""
    calls = max(MODELS // per_call, 8)
    for _ in range(max(WARM_UP // per_call, 2)):
        train(x, y)
        gc.collect()
    memory, registry_before = [], registry_size()
    for _ in range(calls):
        train(x, y)
        gc.collect()
        memory.append(resident_memory_mb())
    slope = np.polyfit(np.arange(calls), memory, 1)[0] / per_call
    return slope, (registry_size() - registry_before) / (calls * per_call)


def main():
    if keras.backend.backend() == "tensorflow":  # short runs of new engines trip TF's "retracing" warning
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 64)).astype("float32")
    y = rng.integers(0, 10, size=2000)
    print(f"backend {keras.backend.backend()}, {MODELS} models after {WARM_UP} warm-up")
    print(f"{'training':<32}{'MiB/model':>10}{'registry/model':>16}")
    slopes = {}
    for name, (train, per_call) in WAYS.items():
        slopes[name], entries = growth(train, x, y, per_call)
        print(f"{name:<32}{slopes[name]:>10.3f}{entries:>16.1f}", flush=True)
    worst = max(slopes[name] for name in WAYS if "coursekit" in name)
    print(f"summary: training with the kit grows at most {worst:.3f} MiB per model (target: no growth, ~0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
