"""Time the lab suite and the 100-trial search on this machine's device, against this project's 2-core CPU.

Runs every lab (`python -m labs NAME --preset full --dataset ... --out ... --quiet`) and the
chapter's narrowing search (`python -m tuning --preset full ...`), each as its own command,
with KERAS_BACKEND=jax (unless KERAS_BACKEND says otherwise), and prints the device, each
command's wall seconds, the seconds the same command took on the project's CPU machine
(`benchmarks/cpu_reference.json`, written by `--record` there) and the speed-up.
`benchmarks/gpu.sh` is the one-call entry.

    python benchmarks/device_timing.py [--dataset idx:PATH] [--out DIR] [--record] [--only NAME ...]
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
SEARCH = "search (python -m tuning --preset full)"


def commands(dataset, out):
    """{name: argv} of every timed command, in order."""
    sys.path.insert(0, str(ROOT))
    from labs import NAMES

    labs = {
        name: [sys.executable, "-m", "labs", name, "--preset", "full", "--dataset", dataset, "--out", out, "--quiet"]
        for name in NAMES
    }
    search = [sys.executable, "-m", "tuning", "--preset", "full", "--dataset", dataset]
    return {**labs, SEARCH: [*search, "--out", f"{out}/tuning", "--quiet", "--overwrite"]}


def device(env):
    code = "import json, coursekit; from coursekit import runtime; print(json.dumps(runtime.device_report()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"cannot start the {env['KERAS_BACKEND']} backend:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    default_dataset = f"idx:{ROOT.parent / 'shared' / 'datasets' / 'mnist'}"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=default_dataset, help=f"default: {default_dataset}")
    parser.add_argument("--out", help="output folder of the runs (default: a temporary folder)")
    parser.add_argument(
        "--record", action="store_true", help=f"write the seconds to {REFERENCE.name} (the CPU machine)"
    )
    parser.add_argument("--only", nargs="*", help="time only these commands (lab names, or 'search')")
    args = parser.parse_args(argv)
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
    report = device(env)
    print(f"backend {report['backend']}, device: {report['device']}, {report['platform']}", flush=True)
    reference = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {"seconds": {}}
    out = args.out or tempfile.mkdtemp(prefix="coursekit-device-")
    seconds = {}
    print(f"{'command':44s} {'seconds':>8s} {'CPU s':>8s} {'speed-up':>9s}", flush=True)
    for name, argv_ in commands(args.dataset, out).items():
        if args.only and not any(part in name for part in args.only):
            continue
        started = time.perf_counter()
        result = subprocess.run(argv_, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds[name] = round(time.perf_counter() - started, 1)
        if result.returncode != 0:
            print(f"{name}: failed\n{result.stderr[-3000:]}", flush=True)
            return 1
        cpu = reference["seconds"].get(name)
        cpu_text, speed = (f"{cpu:8.1f}", f"{cpu / seconds[name]:8.2f}x") if cpu else ("", "")
        print(f"{name:44s} {seconds[name]:8.1f} {cpu_text:>8s} {speed:>9s}", flush=True)
    total, cpu_total = sum(seconds.values()), sum(reference["seconds"].get(n, 0) for n in seconds)
    print(f"{'all':44s} {total:8.1f} {cpu_total or '':>8} {f'{cpu_total / total:8.2f}x' if cpu_total else '':>9s}")
    print(f"outputs in {out}")
    if args.record:
        recorded = {"device": report["device"], "backend": report["backend"], "seconds": seconds}
        REFERENCE.write_text(json.dumps(recorded, indent=2) + "\n")
        print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
