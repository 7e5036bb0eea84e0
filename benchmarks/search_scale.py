"""The chapter's random search at scale: 100 trials with K = 20, 1,000 trials with K = 100 (by default).

Each as the whole command `python -m tuning --oracle random --trials N --population K`, in its
own process: wall seconds, seconds per trial, the peak resident memory of the process
(`/usr/bin/time`-free: `resource.getrusage` of the child) and the search's own report of its
resident memory over the trials (first/last trial, least-squares growth per trial over the
later half: flat means no leak).

    python benchmarks/search_scale.py [--runs 100:20,1000:100] [--backend tensorflow] [--dataset idx:PATH]
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="100:20,1000:100", help="comma list of TRIALS:K")
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    default = ROOT.parent / "shared" / "datasets" / "mnist"
    parser.add_argument("--dataset", default=f"idx:{default}" if default.is_dir() else "digits")
    args = parser.parse_args()
    print(f"backend {args.backend}, dataset {args.dataset}")
    print(
        f"{'trials':>7s} {'K':>5s} {'seconds':>8s} {'s/trial':>8s} {'peak MiB':>9s} {'rss first/last':>16s} {'MiB/trial':>10s}"
    )
    for run in args.runs.split(","):
        trials, k = (int(part) for part in run.split(":"))
        with tempfile.TemporaryDirectory() as out:
            command = [
                sys.executable, "-m", "tuning", "--oracle", "random", "--trials", str(trials), "--population", str(k),
                "--dataset", args.dataset, "--out", out, "--quiet", "--overwrite",
            ]  # fmt: skip
            env = {**os.environ, "KERAS_BACKEND": args.backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if done.returncode != 0:
                raise SystemExit(f"{run} failed:\n{done.stderr[-3000:]}")
            summary = json.loads((pathlib.Path(out) / "config.json").read_text())["summary"]
        first_last = summary["rss_mb first/last trial"]
        growth = summary["rss_mb growth per trial (fit over the later half)"]
        peak_text = f"{peak / 1024:9.0f}" if peak > before else f"{'(<= earlier)':>9s}"
        print(
            f"{trials:7d} {k:5d} {seconds:8.1f} {seconds / trials:8.3f} {peak_text} {str(first_last):>16s} {growth:10.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
