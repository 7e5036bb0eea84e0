"""The optimizer comparison at full scale: Keras (this kit) against the reference NumPy loop.

Four 784-[100]x4-10 ReLU networks (SGD, Momentum, AdaGrad, Adam), batch 128, 2,000
iterations, the same minibatches for all four, the batch loss recorded every
iteration. Timed side by side in one process:

- numpy, the book's loop: what the book's optimizer_compare_mnist computes, in float64
  (`benchmarks/book.py`: every Affine layer's dx, the first one's included, and the batch
  loss computed again after each update, as the book records it);
- numpy, lean: the reference training loop (course formulas, float64), `coursekit.reference`;
- keras fused: `train_variants` (one compiled step trains all four on the shared batch);
- keras per-variant: one compiled `train_on_batch` per variant per batch (like separate fits).

The numpy and fused runs alternate `--repeat` times (default 3) and the best time of each
is printed, so that a busy moment on a shared machine does not decide the ratio; the
per-variant run goes once. Target: keras fused <= 0.3x the book's NumPy loop on the default
TensorFlow backend (the lean loop's ratio is printed too).

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
from book import BookNet, book_step, lean_step  # noqa: E402  (benchmarks/book.py)

from coursekit import optimizers, reference  # noqa: E402
from coursekit.models import multilayer_net  # noqa: E402
from coursekit.training import BatchSampler, Variant, train_variants  # noqa: E402

NAMES = ("SGD", "Momentum", "AdaGrad", "Adam")
SIZES = [784, 100, 100, 100, 100, 10]


def numpy_loop(make_net, step, x, y, batches):
    """The four nets trained on the same `batches` with `step` (`book.book_step` or `book.lean_step`); their losses."""
    rng = np.random.default_rng(0)
    nets = {name: make_net(rng) for name in NAMES}
    updates = {name: reference.OPTIMIZERS[name]() for name in NAMES}
    losses = {name: [] for name in NAMES}
    x64 = x.astype(np.float64)
    for idx in batches:
        xb, yb = x64[idx], y[idx]
        for name, net in nets.items():
            losses[name].append(step(net, updates[name], xb, yb))
    return losses


def numpy_book(x, y, batches):
    """The book's loop: per batch and optimizer, gradient (a forward and a full backward), update, loss again."""
    return numpy_loop(lambda rng: BookNet(SIZES, 0.0, rng), book_step, x, y, batches)


def numpy_reference(x, y, batches):
    """The lean loop over `coursekit.reference.MultiLayerNet`."""
    return numpy_loop(lambda rng: reference.MultiLayerNet(SIZES, rng), lean_step, x, y, batches)


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
    runs = {
        "book": numpy_book,
        "lean": numpy_reference,
        "fused": lambda *a: keras_run(*a[:2], args.iterations, "fused"),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeat):
        for key, run in runs.items():
            best[key] = min(best[key], timed(run, x, y, batches)[0])
    rows = [
        (f"numpy, the book's loop (float64), best of {args.repeat}", best["book"]),
        (f"numpy, lean reference (float64), best of {args.repeat}", best["lean"]),
        (f"keras fused (all 4 in one step), best of {args.repeat}", best["fused"]),
    ]
    if not args.skip_per_variant:
        rows.append(("keras per-variant train_on_batch", timed(keras_run, x, y, args.iterations, "per_variant")[0]))
    print(f"{'implementation':52s} {'seconds':>8s} {'x book':>8s} {'x lean':>8s}")
    for label, seconds in rows:
        print(f"{label:52s} {seconds:8.2f} {seconds / best['book']:8.2f} {seconds / best['lean']:8.2f}")
    print(
        f"summary: keras fused = {best['fused'] / best['book']:.2f}x the book's NumPy loop (target <= 0.3x), "
        f"{best['fused'] / best['lean']:.2f}x the lean one, on {keras.backend.backend()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
