"""Resident memory growth per trained model: the kit's optimizers against Keras' own.

Trains the same small model (64-[100]x2-10, 2 epochs of 2,000 samples, evaluated on a
validation split each epoch) again and again in one process, with `clear_session()`
before each, as a search does. After a warm-up, it reports the least-squares slope of
resident memory over the models, in MiB per model, and on TensorFlow how many entries
each model left in TensorFlow's process-wide gradient registry (each one pins a traced
graph). Target: no growth.

    python benchmarks/memory.py            # KERAS_BACKEND=jax python ... for JAX
"""

import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from coursekit import optimizers  # noqa: E402
from tuning.search import resident_memory_mb  # noqa: E402

MODELS, WARM_UP = 30, 5
OPTIMIZERS = {
    "coursekit.optimizers.SGD": lambda: optimizers.SGD(0.01),
    "keras.optimizers.SGD": lambda: keras.optimizers.SGD(0.01),
}


def registry_size():
    """Entries in TensorFlow's gradient registry (0 on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return 0
    from tensorflow.python.framework import ops as tf_ops

    return len(tf_ops._gradient_registry._registry)


def train_once(make_optimizer, x, y):
    keras.backend.clear_session()
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(make_optimizer(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=100, epochs=2, validation_data=(x[:500], y[:500]), verbose=0)
    del model
    gc.collect()


def growth(make_optimizer, x, y):
    """(MiB per model, registry entries per model) over MODELS models after WARM_UP."""
    for _ in range(WARM_UP):
        train_once(make_optimizer, x, y)
    memory, registry_before = [], registry_size()
    for _ in range(MODELS):
        train_once(make_optimizer, x, y)
        memory.append(resident_memory_mb())
    slope = np.polyfit(np.arange(MODELS), memory, 1)[0]
    return slope, (registry_size() - registry_before) / MODELS


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 64)).astype("float32")
    y = rng.integers(0, 10, size=2000)
    print(f"backend {keras.backend.backend()}, {MODELS} models after {WARM_UP} warm-up")
    print(f"{'optimizer':<28}{'MiB/model':>10}{'registry/model':>16}")
    slopes = {}
    for name, make in OPTIMIZERS.items():
        slopes[name], entries = growth(make, x, y)
        print(f"{name:<28}{slopes[name]:>10.3f}{entries:>16.1f}", flush=True)
    ours = slopes["coursekit.optimizers.SGD"]
    print(f"summary: coursekit optimizers grow {ours:.3f} MiB per model (target: no growth, ~0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
