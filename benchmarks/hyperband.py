"""Hyperband against random search at the same budget, the chapter's search through the kit's drop-in tuners.

The chapter's network and data (`benchmarks/peer_keras_tuner.py`'s mlp: 784-[100]x6-10,
SGD, learning rate 10^U(-6,-2), weight decay 10^U(-8,-4), batches of 100, 400 training and
100 validation images) searched twice in this process, one after the other:

- Hyperband (`tuning.Hyperband`, max_epochs 50, factor 3, one iteration): each bracket's
  survivors continue from the weights and optimizer state where they stopped;
- random search (`tuning.RandomSearch`, 50 epochs per trial) with as many trials as fit in
  the member-epochs Hyperband trained (rounded down).

Printed for each: trials, member-epochs trained (an epoch of one trial; a continued trial
counts only its new epochs), wall seconds, and the best validation accuracy (keras-tuner's
score: the trial's best epoch). Seeds: 0 for both.

    python benchmarks/hyperband.py [--population 20] [--dataset idx:FOLDER]
"""

import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peer_keras_tuner import MNIST, WORKLOADS, build_mlp  # noqa: E402


def member_epochs(tuner):
    """Epochs trained over all trials (the tuner's `tuner/epochs`: a continued trial's new epochs only)."""
    return sum(
        int(trial.metrics.get_last_value("tuner/epochs"))
        for trial in tuner.oracle.trials.values()
        if trial.metrics.exists("tuner/epochs")
    )


def search(tuner, images, epochs):
    started = time.perf_counter()
    tuner.search(
        images.x_train,
        images.y_train,
        validation_data=(images.x_val, images.y_val),
        epochs=epochs,
        batch_size=WORKLOADS["mlp"]["batch_size"],
        verbose=0,
    )
    seconds = time.perf_counter() - started
    best = tuner.oracle.get_best_trials(1)[0]
    return {"trials": len(tuner.oracle.trials), "member-epochs": member_epochs(tuner), "seconds": seconds} | {
        "best val": best.score,
        "best lr": best.hyperparameters.values["learning_rate"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--dataset", default=f"idx:{MNIST}" if MNIST.is_dir() else "digits")
    args = parser.parse_args()

    import keras

    from coursekit import data
    from tuning import Hyperband, RandomSearch

    images = data.load_dataset(args.dataset, train_size=WORKLOADS["mlp"]["train_size"], validation_fraction=0.2, seed=0)
    common = {"objective": "val_accuracy", "seed": 0, "population": args.population, "overwrite": True}
    rows = {}
    with tempfile.TemporaryDirectory() as out:
        hyperband = Hyperband(build_mlp, max_epochs=args.max_epochs, factor=3, directory=out, **common)
        rows["hyperband"] = search(hyperband, images, args.max_epochs)
        trials = max(rows["hyperband"]["member-epochs"] // args.max_epochs, 1)
        random = RandomSearch(build_mlp, max_trials=trials, directory=out, project_name="random", **common)
        rows["random"] = search(random, images, args.max_epochs)
    print(f"backend {keras.backend.backend()}, dataset {args.dataset}, K = {args.population}, seed 0")
    print(f"{'search':10s} {'trials':>7s} {'member-epochs':>14s} {'seconds':>8s} {'best val':>9s} {'its lr':>9s}")
    for name, row in rows.items():
        print(
            f"{name:10s} {row['trials']:7d} {row['member-epochs']:14d} {row['seconds']:8.1f} "
            f"{row['best val']:9.3f} {row['best lr']:9.2g}"
        )


if __name__ == "__main__":
    main()
