"""Per-step cost of each custom component against the Keras built-in beside it.

Same model (784-[100]x4-10), same data, `fit` on the active backend. The two
models of a pair are timed back to back in each of 15 rounds of 100 steps (after
a warm-up), in alternating order, and the ratio reported is the median of the 15
paired ratios: this 2-core machine is shared and noisy, and pairing cancels most
of the drift. Target: every ratio <= 1.10.

    python benchmarks/components.py            # KERAS_BACKEND=jax python ... for JAX
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's coursekit

import keras  # noqa: E402
import numpy as np  # noqa: E402

from coursekit import layers, optimizers, regularizers  # noqa: E402

STEPS, BATCH, ROUNDS = 100, 128, 15


def model(optimizer, norm=None, dropout=None, regularizer=None):
    stack = [keras.Input((784,))]
    for _ in range(4):
        stack.append(keras.layers.Dense(100, kernel_regularizer=regularizer() if regularizer else None))
        if norm:
            stack.append(norm())
        stack.append(keras.layers.Activation("relu"))
        if dropout:
            stack.append(dropout())
    stack.append(keras.layers.Dense(10))
    net = keras.Sequential(stack)
    net.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return net


class OpByOpBatchNorm(layers.BatchNorm):
    """The same formulas written op by op (for the record: why BatchNorm uses ops.moments)."""

    def call(self, inputs, training=None):
        if not training:
            return super().call(inputs, training=training)
        mean = keras.ops.mean(inputs, axis=self._reduction_axes)
        centered = inputs - mean
        variance = keras.ops.mean(keras.ops.square(centered), axis=self._reduction_axes)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1 - self.momentum))
        return self.gamma * centered / keras.ops.sqrt(variance + self.epsilon) + self.beta


PAIRS = {
    "SGD": (lambda: model(lambda: optimizers.SGD(0.01)), lambda: model(lambda: keras.optimizers.SGD(0.01))),
    "Momentum": (lambda: model(optimizers.Momentum), lambda: model(lambda: keras.optimizers.SGD(0.01, momentum=0.9))),
    "Nesterov": (
        lambda: model(optimizers.Nesterov),
        lambda: model(lambda: keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)),
    ),
    "AdaGrad": (lambda: model(optimizers.AdaGrad), lambda: model(lambda: keras.optimizers.Adagrad(0.01))),
    "RMSprop": (lambda: model(optimizers.RMSprop), lambda: model(lambda: keras.optimizers.RMSprop(0.01))),
    "Adam": (lambda: model(optimizers.Adam), lambda: model(keras.optimizers.Adam)),
    "BatchNorm": (
        lambda: model(keras.optimizers.SGD, norm=layers.BatchNorm),
        lambda: model(keras.optimizers.SGD, norm=lambda: keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-6)),
    ),
    "BN op-by-op*": (
        lambda: model(keras.optimizers.SGD, norm=OpByOpBatchNorm),
        lambda: model(keras.optimizers.SGD, norm=lambda: keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-6)),
    ),
    "Dropout": (
        lambda: model(keras.optimizers.SGD, dropout=lambda: layers.Dropout(0.2)),
        lambda: model(keras.optimizers.SGD, dropout=lambda: keras.layers.Dropout(0.2)),
    ),
    "WeightDecay": (
        lambda: model(keras.optimizers.SGD, regularizer=lambda: regularizers.WeightDecay(0.1)),
        lambda: model(keras.optimizers.SGD, regularizer=lambda: keras.regularizers.L2(0.05)),
    ),
}


def per_step_seconds(net, x, y):
    started = time.perf_counter()
    net.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - started) / STEPS


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((STEPS * BATCH, 784), dtype=np.float32)
    y = rng.integers(0, 10, STEPS * BATCH).astype("int32")
    print(
        f"backend={keras.backend.backend()}  model=784-[100]x4-10  batch={BATCH}  {ROUNDS} paired rounds of {STEPS} steps"
    )
    print(f"{'component':12s} {'ours ms/step':>13s} {'keras ms/step':>14s} {'paired ratio':>13s}")
    ratios = {}
    for name, (ours_factory, keras_factory) in PAIRS.items():
        ours, theirs = ours_factory(), keras_factory()
        per_step_seconds(ours, x, y), per_step_seconds(theirs, x, y)  # warm-up: tracing
        times = {"ours": [], "keras": []}
        for round_index in range(ROUNDS):
            order = (("ours", ours), ("keras", theirs)) if round_index % 2 == 0 else (("keras", theirs), ("ours", ours))
            for key, net in order:
                times[key].append(per_step_seconds(net, x, y))
        ours_t, keras_t = statistics.median(times["ours"]), statistics.median(times["keras"])
        ratios[name] = statistics.median(a / b for a, b in zip(times["ours"], times["keras"]))
        print(f"{name:12s} {ours_t * 1e3:13.3f} {keras_t * 1e3:14.3f} {ratios[name]:13.3f}")
    print("* for the record only (not a kit component): BatchNorm's formulas written op by op")
    ratios.pop("BN op-by-op*")
    worst = max(ratios, key=ratios.get)
    verdict = "meets" if ratios[worst] <= 1.10 else "MISSES"
    print(f"summary: worst ratio {ratios[worst]:.3f} ({worst}); {verdict} the 1.10 target on {keras.backend.backend()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
