"""BatchNorm alone: the kit's layer, the same formulas op by op, and Keras' own.

Forward + backward of one layer in training mode, inside a compiled function, on an
MLP-sized and a conv-sized input; median of 7 rounds of 300 calls. Shows where a
BatchNorm written op by op loses time (extra passes over the full tensor) and that
the kit's layer, built on `ops.moments` and `ops.batch_normalization`, does not.

    python benchmarks/batchnorm.py        # TensorFlow (the backend this question is about)
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's coursekit
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from components import OpByOpBatchNorm  # noqa: E402

from coursekit.layers import BatchNorm  # noqa: E402

SHAPES = [(128, 100), (128, 16, 16, 32)]


def seconds_per_call(layer, x):
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("this benchmark compiles with tf.function: run it with KERAS_BACKEND=tensorflow")
    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, training=True)))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    step(x)
    rounds = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(300):
            step(x)
        rounds.append((time.perf_counter() - started) / 300)
    return statistics.median(rounds)


def main():
    print(
        f"{'input shape':20s} {'kit us':>8s} {'op-by-op us':>12s} {'keras us':>9s} {'kit/keras':>10s} {'op-by-op/keras':>15s}"
    )
    worst = 0.0
    for shape in SHAPES:
        x = keras.ops.convert_to_tensor(np.random.default_rng(0).random(shape, dtype=np.float32))
        times = {}
        for name, layer in (
            ("kit", BatchNorm()),
            ("op-by-op", OpByOpBatchNorm()),
            ("keras", keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-6)),
        ):
            layer.build(shape)
            times[name] = seconds_per_call(layer, x)
        kit, naive = times["kit"] / times["keras"], times["op-by-op"] / times["keras"]
        worst = max(worst, kit)
        print(
            f"{str(shape):20s} {times['kit'] * 1e6:8.0f} {times['op-by-op'] * 1e6:12.0f} {times['keras'] * 1e6:9.0f} {kit:10.2f} {naive:15.2f}"
        )
    print(f"summary: the kit's BatchNorm costs at most {worst:.2f}x Keras' own per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
