"""How large a population: seconds per trial and peak memory when K trials of the search train together.

Each K runs in a fresh process: max(K, 20) trials of the reference search (784-[100]x6-10,
SGD with weight decay, 50 epochs of 4 minibatches of 100 on 400 images, both splits
evaluated every epoch), built and seeded as the tuner does, trained in populations of K
with `train_variants(engine="population")`. Printed: seconds per trial (training only,
after a first population that pays the compilation), the compilation's seconds, and the
process's peak resident memory (the start-up of the backend included, about the same for
every K).

    python benchmarks/population_size.py [--sizes 1 5 20 50 100]    # KERAS_BACKEND=jax for JAX
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's coursekit

EPOCHS, TRAIN, VALIDATION = 50, 400, 100


def measure(k):
    """In this process: (compile + first population seconds, seconds per trial after it)."""
    import keras_tuner
    import numpy as np

    from coursekit.training import Variant, train_variants
    from tuning.search import SearchSettings, build_model, seed_trial

    rng = np.random.default_rng(0)
    x, y = rng.random((TRAIN, 784), dtype=np.float32), rng.integers(0, 10, TRAIN)
    x_val, y_val = rng.random((VALIDATION, 784), dtype=np.float32), rng.integers(0, 10, VALIDATION)
    settings = SearchSettings()

    def population(first_seed):
        variants = []
        for seed in range(first_seed, first_seed + k):
            hp = keras_tuner.HyperParameters()
            hp.values = {"learning_rate": 10 ** rng.uniform(-6, -2), "weight_decay": 10 ** rng.uniform(-8, -4)}
            seed_trial(seed)
            model = build_model(hp, settings, 784, 10)
            variants.append(Variant(str(seed), model, model.optimizer, seed=seed))
        started = time.perf_counter()
        train_variants(
            variants,
            x,
            y,
            batch_size=100,
            epochs=EPOCHS,
            sampling="epoch",
            eval_sets={"val_accuracy": (x_val, y_val), "train_accuracy": (x, y)},
            verbose=0,
            engine="population",
        )
        return time.perf_counter() - started

    first = population(0)
    populations = max(-(-20 // k) - 1, 1)
    seconds = sum(population(1000 * (p + 1)) for p in range(populations))
    return first, seconds / (populations * k)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20, 50, 100])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        first, per_trial = measure(args.child)
        print(json.dumps({"first": first, "per_trial": per_trial}))
        return 0
    import keras

    print(f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs; the reference search's trials, {EPOCHS} epochs")
    print(f"{'K':>4s} {'s/trial':>8s} {'first population s':>19s} {'peak MiB':>9s}")
    for k in args.sizes:
        process = subprocess.Popen([sys.executable, __file__, "--child", str(k)], stdout=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        output = process.stdout.read().decode().strip().splitlines()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"K={k} failed")
        result = json.loads(output[-1])
        print(f"{k:4d} {result['per_trial']:8.3f} {result['first']:19.1f} {usage.ru_maxrss / 1024:9.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
