"""The chapter's 100-trial search: `python -m tuning` against the plain NumPy loop, side by side in one run.

The workload is the reference's hyperparameter search: 100 trials of a 784-[100]x6-10 ReLU
net (He initial weights, SGD, weight decay), each 50 epochs of 4 minibatches of 100 on 400
training images, with the accuracy of the 400 training and the 100 validation images after
every epoch; learning rate 10^U(-6,-2), weight decay 10^U(-8,-4).

- numpy, the book's loop: what the book's `Trainer` and `MultiLayerNet` compute, in float64:
  a minibatch drawn with replacement, the gradient by backpropagation through Affine/ReLU
  layers (every Affine layer's backward also computes dx, the first one's included), the
  SGD update, the minibatch loss computed again after the update (the Trainer records it),
  the accuracy of both splits every epoch and of the validation split at the end. It runs
  at its best on this machine: timed with NumPy's default BLAS threads and with one thread,
  the faster counts (both are printed).
- numpy, lean: the same search with `coursekit.reference.MultiLayerNet` (no dx of the
  first layer, no second loss): the least NumPy can do, for comparison.
- `python -m tuning --oracle random --trials 100 ...`: the whole command in a subprocess
  (start-up, data, oracle, training, report and figure), on TensorFlow (the default
  backend), on JAX and on PyTorch, with the default population (K = 20) and, for its peak
  memory, with all 100 trials in one population.

Printed: wall seconds, the ratio to NumPy (target <= 0.5x), peak resident
memory of each command, and the resident-memory growth per trial over the search.

    python benchmarks/search.py [--dataset idx:PATH] [--numpy-trials 100] [--skip-k100]
"""

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the data loader imports TensorFlow: no C++ start-up lines

from book import BookNet, book_step, lean_step  # noqa: E402  (benchmarks/book.py)

from coursekit import data, reference  # noqa: E402

EPOCHS, BATCH, TRIALS = 50, 100, 100
SIZES = [784] + [100] * 6 + [10]


def lean_net(sizes, lam, rng):
    return reference.MultiLayerNet(sizes, rng, weight_decay_lambda=lam)


BOOK, LEAN = (BookNet, book_step), (lean_net, lean_step)  # (network, update step) of each NumPy loop


def numpy_trial(loop, x, y, x_val, y_val, rng):
    """One trial of the search with `loop` (`BOOK` or `LEAN`); returns the final validation accuracy.

    Minibatches drawn with replacement, the accuracy of both splits after every epoch, as the
    book's Trainer does.
    """
    make_net, step = loop
    learning_rate, lam = 10 ** rng.uniform(-6, -2), 10 ** rng.uniform(-8, -4)
    net = make_net([x.shape[1]] + SIZES[1:], lam, rng)
    optimizer = reference.SGD(lr=learning_rate)
    per_epoch = max(len(x) // BATCH, 1)
    for iteration in range(EPOCHS * per_epoch):
        rows = rng.choice(len(x), BATCH)
        step(net, optimizer, x[rows], y[rows])
        if iteration % per_epoch == 0:
            net.accuracy(x, y), net.accuracy(x_val, y_val)
    return net.accuracy(x_val, y_val)


def numpy_search(loop, dataset, trials, threads):
    """Seconds for `trials` trials of the NumPy `loop` with `threads` BLAS threads (None: NumPy's default)."""
    x, y = dataset.x_train.astype(np.float64), dataset.y_train
    x_val, y_val = dataset.x_val.astype(np.float64), dataset.y_val
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=threads):
        started = time.perf_counter()
        for _ in range(trials):
            numpy_trial(loop, x, y, x_val, y_val, rng)
        return time.perf_counter() - started


def tuning_command(dataset, out, population=None):
    command = [sys.executable, "-m", "tuning", "--oracle", "random", "--trials", str(TRIALS)]
    command += ["--epochs", str(EPOCHS), "--dataset", dataset, "--out", str(out), "--quiet", "--overwrite"]
    return command + (["--population", str(population)] if population else [])


def run_tuning(dataset, backend, population=None):
    """(wall seconds, peak resident MiB, summary) of one whole `python -m tuning` command."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "KERAS_BACKEND": backend}
        started = time.perf_counter()
        process = subprocess.Popen(tuning_command(dataset, out, population), cwd=ROOT, env=env, stdout=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        output = process.stdout.read().decode()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"python -m tuning failed ({backend}):\n{output[-2000:]}")
        summary = json.loads((pathlib.Path(out) / "config.json").read_text())["summary"]
        return seconds, usage.ru_maxrss / 1024, summary


def main(argv=None):
    default_dataset = f"idx:{ROOT.parent / 'shared' / 'datasets' / 'mnist'}"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=default_dataset, help=f"default: {default_dataset}")
    parser.add_argument("--numpy-trials", type=int, default=TRIALS, help="NumPy trials timed (scaled to 100)")
    parser.add_argument("--skip-k100", action="store_true", help="skip the population of 100 trials")
    parser.add_argument("--backends", default="tensorflow,jax,torch", help="default: tensorflow,jax,torch")
    args = parser.parse_args(argv)
    dataset = data.load_dataset(args.dataset, train_size=500, validation_fraction=0.2)

    scale = TRIALS / args.numpy_trials
    book = {threads: numpy_search(BOOK, dataset, args.numpy_trials, threads) * scale for threads in (None, 1)}
    threads = min(book, key=book.get)  # the book's loop at its best: each BLAS setting timed in full
    numpy_s = book[threads]
    lean_s = numpy_search(LEAN, dataset, args.numpy_trials, threads) * scale
    rows = [
        *(
            (f"numpy, the book's loop, BLAS threads: {t or 'default'}", seconds, None, None)
            for t, seconds in book.items()
        ),
        ("numpy, lean (coursekit.reference)", lean_s, None, None),
    ]
    numpy_rows = len(rows)
    runs = [(backend, None) for backend in args.backends.split(",")]
    runs += [] if args.skip_k100 else [(runs[0][0], TRIALS)]
    for backend, population in runs:
        seconds, peak, summary = run_tuning(args.dataset, backend, population)
        label = f"python -m tuning, {backend}, population {population or 20}"
        rows.append((label, seconds, peak, summary["rss_mb growth per trial (fit over the later half)"]))

    print(
        f"the chapter's search: {TRIALS} trials x {EPOCHS} epochs, 784-[100]x6-10, batch {BATCH}; {os.cpu_count()} CPUs"
    )
    if args.numpy_trials != TRIALS:
        print(f"(numpy: {args.numpy_trials} trials timed, scaled to {TRIALS})")
    print(f"{'what':52s} {'seconds':>8s} {'x book':>7s} {'peak MiB':>9s} {'MiB/trial':>10s}")
    for label, seconds, peak, growth in rows:
        peak_text = "" if peak is None else f"{peak:9.0f}"
        growth_text = "" if growth is None else f"{growth:10.3f}"
        print(f"{label:52s} {seconds:8.1f} {seconds / numpy_s:7.2f} {peak_text:>9s} {growth_text:>10s}")
    ratios = {
        backend: row[1] / numpy_s for (backend, population), row in zip(runs, rows[numpy_rows:]) if population is None
    }
    print(
        "summary: python -m tuning = "
        + ", ".join(f"{ratio:.2f}x on {backend}" for backend, ratio in ratios.items())
        + " the book's NumPy loop (targets: <= 0.5x)"
    )
    return 0 if all(math.isfinite(r) for r in ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
