"""The optimizer comparison at full scale: Keras (this kit) against the reference NumPy loop.

Four 784-[100]x4-10 ReLU networks (SGD, Momentum, AdaGrad, Adam), batch 128, 2,000
iterations, the same minibatches for all four, the batch loss recorded every
iteration. Timed side by side in one process:

- numpy: the reference training loop (course formulas, float64), `coursekit.reference`;
- keras fused: `train_variants` (one compiled step trains all four on the shared batch);
- keras per-variant: one compiled `train_on_batch` per variant per batch (like separate fits).

The numpy and fused runs alternate `--repeat` times (default 3) and the best time of each
is printed, so that a busy moment on a shared machine does not decide the ratio; the
per-variant run goes once. Target: keras fused <= 0.3x numpy on the default TensorFlow
backend.

    python benchmarks/optimizer_compare.py [--iterations 2000] [--repeat 3] [--skip-per-variant]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's coursekit

import keras  # noqa: E402
import numpy as np  # noqa: E402

from coursekit import optimizers, reference  # noqa: E402
from coursekit.models import multilayer_net  # noqa: E402
from coursekit.training import BatchSampler, Variant, train_variants  # noqa: E402

NAMES = ("SGD", "Momentum", "AdaGrad", "Adam")
SIZES = [784, 100, 100, 100, 100, 10]


def numpy_reference(x, y, batches):
    rng = np.random.default_rng(0)
    nets = {name: reference.MultiLayerNet(SIZES, rng) for name in NAMES}
    updates = {name: reference.OPTIMIZERS[name]() for name in NAMES}
    losses = {name: [] for name in NAMES}
    x64 = x.astype(np.float64)
    for idx in batches:
        xb, yb = x64[idx], y[idx]
        for name, net in nets.items():
            loss, grads = net.loss_and_grads(xb, yb)
            updates[name].update(net.params, grads)
            losses[name].append(loss)
    return losses


def keras_run(x, y, iterations, engine):
    variants = [Variant(n, multilayer_net(784, [100] * 4, seed=0), optimizers.get(n)) for n in NAMES]
    return train_variants(variants, x, y, batch_size=128, iterations=iterations, seed=0, verbose=0, engine=engine)


def timed(fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - started, out


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-per-variant", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.random((10_000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 10_000).astype("int32")
    batches = BatchSampler(len(x), 128, "reference", seed=0).take(args.iterations)

    print(
        f"backend={keras.backend.backend()}  4 nets 784-[100]x4-10  batch 128  {args.iterations} iterations  {os.cpu_count()} CPUs"
    )
    best = {"numpy": float("inf"), "fused": float("inf")}
    for _ in range(args.repeat):
        best["numpy"] = min(best["numpy"], timed(numpy_reference, x, y, batches)[0])
        best["fused"] = min(best["fused"], timed(keras_run, x, y, args.iterations, "fused")[0])
    rows = [
        (f"numpy reference (float64), best of {args.repeat}", best["numpy"], None),
        (f"keras fused (all 4 in one step), best of {args.repeat}", best["fused"], None),
    ]
    if not args.skip_per_variant:
        rows.append(("keras per-variant train_on_batch", *timed(keras_run, x, y, args.iterations, "per_variant")))
    base = rows[0][1]
    print(f"{'implementation':48s} {'seconds':>8s} {'x numpy':>8s}")
    for label, seconds, _ in rows:
        print(f"{label:48s} {seconds:8.2f} {seconds / base:8.2f}")
    fused = rows[1][1] / base
    print(f"summary: keras fused = {fused:.2f}x the NumPy reference time on {keras.backend.backend()} (target <= 0.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
