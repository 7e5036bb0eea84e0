"""The same searches through keras-tuner's own RandomSearch + fit and through the kit's drop-in RandomSearch.

Both run the same `build(hp)` functions, written as a Keras user writes them (Keras' layers,
optimizers, losses and metrics; nothing of the kit inside), on the same data, each as a whole
process (start-up, data, search), alternating A B A B, the fastest of `--repeats` kept:

- mlp: the chapter's search: 784-[100]x6-10 ReLU (He initial weights, L2 weight decay
  lam/2 as the book's 0.5*lam*sum(W^2)), SGD with the learning rate 10^U(-6,-2) and the decay
  10^U(-8,-4), 100 trials x 50 epochs, batches of 100, on the first 500 images (400 to
  train, 100 to validate); the kit with K = 20.
- cnn: a small convnet (two 3x3 convolutions of 16 and 32 filters, max pooling, dropout
  U(0, 0.5), a dense layer), Adam with the learning rate 10^U(-4,-2), 20 trials x 5 epochs,
  batches of 64, on 2,000 images (1,600 / 400); the kit with K = 10.

Printed per workload and backend: wall seconds of each, the ratio kit / keras-tuner (targets:
mlp <= 0.1x, cnn <= 1x on this CPU) and the best validation accuracy of each. The images are
the MNIST files of `--dataset` (default: ../shared/datasets/mnist when it is there, else the
8x8 digits, which fit only the mlp workload).

    python benchmarks/peer_keras_tuner.py [--workloads mlp,cnn] [--backends tensorflow,jax] [--repeats 2]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
WORKLOADS = {
    "mlp": {"trials": 100, "epochs": 50, "batch_size": 100, "train_size": 500, "population": 20},
    "cnn": {"trials": 20, "epochs": 5, "batch_size": 64, "train_size": 2000, "population": 10},
}


def build_mlp(hp):
    import keras

    learning_rate = hp.Float("learning_rate", 1e-6, 1e-2, sampling="log")
    weight_decay = hp.Float("weight_decay", 1e-8, 1e-4, sampling="log")
    model = keras.Sequential([keras.Input((784,))])
    for _ in range(6):
        model.add(keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal",
                                     kernel_regularizer=keras.regularizers.L2(weight_decay / 2)))  # fmt: skip
    model.add(
        keras.layers.Dense(
            10, kernel_initializer="he_normal", kernel_regularizer=keras.regularizers.L2(weight_decay / 2)
        )
    )
    model.compile(
        keras.optimizers.SGD(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def build_cnn(hp):
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5)),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run_one(which, workload, dataset, out):
    """One search in this process; prints a JSON line with its best validation accuracy."""
    sys.path.insert(0, str(ROOT))
    import keras_tuner

    from coursekit import data

    config = WORKLOADS[workload]
    images = data.load_dataset(dataset, train_size=config["train_size"], validation_fraction=0.2, seed=0)
    x, x_val = images.x_train, images.x_val
    if workload == "cnn":
        x, x_val = x.reshape(-1, 28, 28, 1), x_val.reshape(-1, 28, 28, 1)
    build = build_mlp if workload == "mlp" else build_cnn
    common = {
        "objective": "val_accuracy",
        "max_trials": config["trials"],
        "seed": 0,
        "directory": out,
        "overwrite": True,
    }
    if which == "kit":
        from tuning import RandomSearch

        tuner = RandomSearch(build, population=config["population"], **common)
    else:
        tuner = keras_tuner.RandomSearch(build, **common)
    tuner.search(
        x, images.y_train, validation_data=(x_val, images.y_val), epochs=config["epochs"],
        batch_size=config["batch_size"], verbose=0,
    )  # fmt: skip
    best = tuner.oracle.get_best_trials(1)[0]
    print(json.dumps({"best_val_accuracy": best.score, "trials": len(tuner.oracle.trials)}))


def timed(which, workload, backend, dataset):
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            __file__,
            "--run",
            which,
            "--workloads",
            workload,
            "--dataset",
            dataset,
            "--out",
            out,
        ]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{which} {workload} on {backend} failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dataset", default=f"idx:{MNIST}" if MNIST.is_dir() else "digits")
    parser.add_argument("--run", choices=["kit", "keras-tuner"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return run_one(args.run, args.workloads, args.dataset, args.out)
    print(f"dataset {args.dataset}; fastest of {args.repeats} alternating runs, whole processes")
    print(
        f"{'workload':8s} {'backend':10s} {'keras-tuner s':>14s} {'kit s':>8s} {'ratio':>7s} {'best val (keras-tuner / kit)':>30s}"
    )
    for workload in args.workloads.split(","):
        for backend in args.backends.split(","):
            times, results = {"keras-tuner": [], "kit": []}, {}
            for _ in range(args.repeats):
                for which in ("keras-tuner", "kit"):
                    seconds, result = timed(which, workload, backend, args.dataset)
                    times[which].append(seconds)
                    results[which] = result
            peer, kit = min(times["keras-tuner"]), min(times["kit"])
            accuracy = f"{results['keras-tuner']['best_val_accuracy']:.3f} / {results['kit']['best_val_accuracy']:.3f}"
            print(f"{workload:8s} {backend:10s} {peer:14.1f} {kit:8.1f} {kit / peer:6.3f}x {accuracy:>30s}", flush=True)


if __name__ == "__main__":
    main()
