"""What several seeds cost: each lab's wall time with 1 and with N seeds, side by side in one process.

    python benchmarks/seeds.py [--preset full|smoke] [--seeds 3] [--dataset idx:../shared/datasets/mnist] [LAB ...]

Each lab runs with one seed, then with N, then again with one and N (`--repeat`), and the
fastest of each is printed (seconds from the lab's own `config.json`, `wall_time_s`), with
the ratio. The notebooks' seed defaults (`start(..., notebook_seeds=N)`) were chosen from it.
"""

import argparse
import json
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's coursekit

from coursekit import lab  # noqa: E402
from labs import NAMES  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/seeds.py")
    parser.add_argument("labs", nargs="*", default=list(NAMES))
    parser.add_argument("--preset", default="full")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dataset", default="idx:../shared/datasets/mnist")
    args = parser.parse_args(argv)
    print(f"{'lab':34s} {'1 seed s':>9s} {f'{args.seeds} seeds s':>10s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory() as out:
        for name in args.labs:
            seconds = {1: [], args.seeds: []}
            for _ in range(args.repeat):
                for count in seconds:
                    done = lab.run(name, preset=args.preset, dataset=args.dataset, out=out, seeds=count, verbose=0)
                    seconds[count].append(json.loads((done.out_dir / "config.json").read_text())["wall_time_s"])
            one, many = min(seconds[1]), min(seconds[args.seeds])
            print(f"{name:34s} {one:9.1f} {many:10.1f} {many / one:6.2f}", flush=True)


if __name__ == "__main__":
    main()
