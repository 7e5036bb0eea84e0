"""Time the labs and the chapter's searches on this machine's device, against this project's 2-core CPU.

For each backend of `--backends` (JAX and PyTorch by default: a GPU machine here has both with
CUDA, and no TensorFlow):

- labs as commands: every lab, `python -m labs NAME --preset full --dataset ... --quiet`, each
  its own process (start-up and compilation included);
- labs in one warm process: every lab twice in one process (`coursekit.lab.run`), as a
  student re-runs notebook cells: the first pass ("cold") and the second ("warm");
- searches: the chapter's 100-trial random search (`python -m tuning --oracle random`) with
  K = 20 and 100, and `--big N` trials with K = `--big-population` (default 10,000 trials,
  K = 1,000), each a whole command.

The parts run in the order of the issue's targets, each on every backend before the next part:
the searches, the big search, the labs in one warm process, then the labs as commands. With
`--budget SECONDS`, no item starts once that many seconds have passed (the rest are listed as
skipped), so a time-boxed call on a lent GPU brings the targets back first.

Printed: each backend's device, each item's wall seconds, the seconds the same item took on the
project's CPU machine (`benchmarks/cpu_reference.json`, written there by `--record`) and the
speed-up, one line as soon as the item ends. `benchmarks/gpu.sh` is the one-call entry. A
backend that cannot start is said and skipped (exit status 1), the others still run.

    python benchmarks/device_timing.py [--backends jax,torch] [--dataset idx:PATH] [--parts search,big,warm,labs]
        [--big 10000] [--big-population 1000] [--budget SECONDS] [--record] [--only NAME ...]
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
REFERENCE = ROOT / "benchmarks" / "cpu_reference.json"
PARTS = ("search", "big", "warm", "labs")  # in this order: the targets first


def lab_names():
    sys.path.insert(0, str(ROOT))
    from labs import NAMES

    return NAMES


def search_command(dataset, out, trials, population):
    return [
        sys.executable, "-m", "tuning", "--oracle", "random", "--trials", str(trials), "--population", str(population),
        "--dataset", dataset, "--out", out, "--quiet", "--overwrite",
    ]  # fmt: skip


def warm_labs(dataset, only):
    """In this process: every lab twice; prints one JSON line per pass."""
    sys.path.insert(0, str(ROOT))
    import coursekit  # noqa: F401  (quiet start)
    from coursekit import lab

    out = tempfile.mkdtemp(prefix="coursekit-warm-")
    for run in ("cold", "warm"):
        started = time.perf_counter()
        for name in lab_names():
            if not only or any(part in name for part in only):
                lab.run(name, preset="full", dataset=dataset, out=out, verbose=0)
        print(json.dumps({"run": run, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


def device(env):
    """The backend's `runtime.device_report()`, or None (said, with its error) when the backend cannot start."""
    code = "import json, coursekit; from coursekit import runtime; print(json.dumps(runtime.device_report()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"backend {env['KERAS_BACKEND']}: cannot start, skipped:\n{result.stderr[-2000:]}", flush=True)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def items(args, part, out):
    """(name, argv) of the timed commands of one part."""
    if part == "labs":
        for name in lab_names():
            if not args.only or any(word in name for word in args.only):
                yield name, [sys.executable, "-m", "labs", name, "--preset", "full", "--dataset", args.dataset, "--out", out, "--quiet"]  # fmt: skip
    elif part == "warm":
        only = ["--only", *args.only] if args.only else []
        yield "labs in one process", [sys.executable, __file__, "--warm", "--dataset", args.dataset, *only]
    elif part == "search":
        for k in (20, 100):
            yield f"search 100 trials, K={k}", search_command(args.dataset, f"{out}/search{k}", 100, k)
    elif part == "big":
        yield (
            f"search {args.big} trials, K={args.big_population}",
            search_command(args.dataset, f"{out}/big", args.big, args.big_population),
        )


def timed(command, env):
    """`[(row, seconds)]` of one command (a warm run's passes, else its wall time), or its error text."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = round(time.perf_counter() - started, 1)
    if result.returncode != 0:
        return result.stderr[-3000:]
    passes = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"run"')]
    return [(p["run"], p["seconds"]) for p in passes] or [(None, elapsed)]


def main(argv=None):
    default_dataset = f"idx:{ROOT.parent / 'shared' / 'datasets' / 'mnist'}"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--dataset", default=default_dataset, help=f"default: {default_dataset}")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    parser.add_argument("--big", type=int, default=10_000, help="trials of the big search")
    parser.add_argument("--big-population", type=int, default=1_000)
    parser.add_argument("--budget", type=float, help="seconds after which no item starts (default: none)")
    parser.add_argument("--out", help="output folder of the runs (default: a temporary folder)")
    parser.add_argument(
        "--record", action="store_true", help=f"write the seconds to {REFERENCE.name} (the CPU machine)"
    )
    parser.add_argument("--only", nargs="*", help="labs to time (default: all)")
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warm:
        return warm_labs(args.dataset, args.only)
    started = time.perf_counter()
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    out = args.out or tempfile.mkdtemp(prefix="coursekit-device-")
    envs, recorded, skipped = {}, {}, []
    for backend in args.backends.split(","):  # failed ones are said and left out: the others still run
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        report = device(env)
        if report is not None:
            envs[backend] = env
            recorded[backend] = {"device": report["device"], "seconds": {}}
            print(f"backend {backend}: {report['device']}, {report['platform']}", flush=True)
    print(f"{'backend':10s} {'item':44s} {'seconds':>8s} {'CPU s':>8s} {'speed-up':>9s}", flush=True)
    parts = [part for part in PARTS if part in args.parts.split(",")]
    for part in parts:
        for backend, env in envs.items():
            cpu = reference.get(backend, {}).get("seconds", {})
            for name, command in items(args, part, f"{out}/{backend}"):
                if args.budget is not None and time.perf_counter() - started > args.budget:
                    skipped.append(f"{backend} {name}")
                    continue
                rows = timed(command, env)
                if isinstance(rows, str):
                    print(f"{backend:10s} {name}: failed\n{rows}", flush=True)
                    continue
                for run, value in rows:
                    row = f"{name}, {run}" if run else name
                    recorded[backend]["seconds"][row] = value
                    base = cpu.get(row)
                    speed = f"{base / value:8.2f}x" if base else ""
                    print(f"{backend:10s} {row:44s} {value:8.1f} {base or '':>8} {speed:>9s}", flush=True)
    if skipped:
        print(f"skipped (past the budget of {args.budget:g} s): {'; '.join(skipped)}")
    print(f"outputs in {out}; {time.perf_counter() - started:.0f} s in all")
    if args.record:  # this run's items replace theirs; the backend's other items stay
        for backend, entry in recorded.items():
            kept = reference.get(backend, {}).get("seconds", {})
            reference[backend] = {"device": entry["device"], "seconds": {**kept, **entry["seconds"]}}
        REFERENCE.write_text(json.dumps(reference, indent=2) + "\n")
        print(f"wrote {REFERENCE}")
    return 0 if len(envs) == len(args.backends.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
