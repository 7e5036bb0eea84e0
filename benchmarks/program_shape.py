"""What a GPU will see, measured here: the shape of every lab's and the search's programs, cold and warm.

For each backend (one process each) and each lab (`--preset full`) and the chapter's 100-trial
search, run twice in the same process, as a student re-runs a notebook cell:

- programs: compiled `Program`s the engine built (one per lab run; populations reuse theirs),
- traces: how often their compiled pieces were traced (compilations on TF and JAX, `torch.fx`
  traces on PyTorch, plus every call of a piece PyTorch runs eagerly: a model with a noise layer),
- eager: on PyTorch, pieces that could not be traced and run eagerly (a model with a noise layer),
- calls, steps: engine calls (each ends with one transfer of its results to the host) and the
  training steps they made, so calls per 100 steps is the host round trips a GPU would wait on,
- loop: where the loop over steps ran ("host": a Python loop over compiled steps, the CPU's
  choice; "device": inside one compiled program per call, a GPU's),
- cold s and warm s: the first run's and the second run's wall seconds; cold - warm is the
  compilation and other first-run costs a warm process no longer pays.

    python benchmarks/program_shape.py [--backends tensorflow,jax,torch] [--dataset idx:PATH] [--only NAME ...]
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
SEARCH = "search"


def measure(dataset, only):
    """In this process: each lab and the search twice; prints one JSON line per run."""
    sys.path.insert(0, str(ROOT))
    import coursekit  # noqa: F401  (quiet start)
    from coursekit import lab, population
    from labs import NAMES
    from tuning import SearchSettings, run_search

    names = [n for n in (*NAMES, SEARCH) if not only or any(part in n for part in only)]
    out = tempfile.mkdtemp(prefix="coursekit-shape-")
    for name in names:
        for run in ("cold", "warm"):
            before = dict(population.stats())
            started = time.perf_counter()
            if name == SEARCH:
                settings = SearchSettings(dataset=dataset, oracle="random")
                run_search(settings, pathlib.Path(out) / "search", overwrite=True, verbose=0)
            else:
                lab.run(name, preset="full", dataset=dataset, out=out, verbose=0)
            seconds = time.perf_counter() - started
            after = population.stats()
            delta = {
                key: after.get(key, 0) - before.get(key, 0) for key in ("programs", "traces", "eager", "calls", "steps")
            }
            loop = population._backend().host_loop  # "cpu": a convnet's loop on the host, others in the program
            print(
                json.dumps({"name": name, "run": run, "seconds": round(seconds, 2), "loop": loop, **delta}), flush=True
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    default = ROOT.parent / "shared" / "datasets" / "mnist"
    parser.add_argument("--dataset", default=f"idx:{default}" if default.is_dir() else "digits")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.dataset, args.only)
    print(f"dataset {args.dataset}; each lab (full preset) and the 100-trial search run twice in one process")
    header = f"{'backend':10s} {'lab':34s} {'loop':6s} {'programs':>8s} {'traces':>7s} {'eager':>5s} {'calls':>6s}"
    print(f"{header} {'steps':>7s} {'calls/100 steps':>15s} {'cold s':>7s} {'warm s':>7s} {'cold-warm':>9s}")
    for backend in args.backends.split(","):
        command = [
            sys.executable,
            __file__,
            "--measure",
            "--dataset",
            args.dataset,
            *(["--only", *args.only] if args.only else []),
        ]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0:
            print(f"{backend}: failed\n{done.stderr[-3000:]}")
            continue
        by_name = {}
        for run in runs:
            by_name.setdefault(run["name"], {})[run["run"]] = run
        for name, pair in by_name.items():
            cold, warm = pair["cold"], pair["warm"]
            per_100 = f"{100 * cold['calls'] / cold['steps']:.1f}" if cold["steps"] else ""
            print(
                f"{backend:10s} {name:34s} {cold['loop']:6s} {cold['programs']:8d} {cold['traces']:7d} {cold['eager']:5d} "
                f"{cold['calls']:6d} {cold['steps']:7d} {per_100:>15s} {cold['seconds']:7.1f} {warm['seconds']:7.1f} "
                f"{cold['seconds'] - warm['seconds']:9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
