"""Compare two `python -m labs all --out DIR` runs: the largest absolute difference per lab and metric.

Every row of every `DIR/<lab>/results.csv` is matched on (variant, factors, step, metric);
rows present in one run only are counted. NaN equals NaN (a diverged variant).

    python benchmarks/compare_labs.py /tmp/before-tensorflow /tmp/after-tensorflow
"""

import argparse
import csv
import math
import pathlib
import sys


def read(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = {}
    for row in rows:
        value = float(row.pop("value"))
        table[tuple(sorted(row.items()))] = value
    return table


def compare(before_dir, after_dir):
    """Rows `(lab, metric, compared, only in one run, max |difference|)`."""
    rows = []
    labs = sorted({p.parent.name for p in pathlib.Path(before_dir).glob("*/results.csv")})
    for lab in labs:
        before = read(pathlib.Path(before_dir) / lab / "results.csv")
        after_path = pathlib.Path(after_dir) / lab / "results.csv"
        after = read(after_path) if after_path.exists() else {}
        metrics = sorted({dict(key)["metric"] for key in before} | {dict(key)["metric"] for key in after})
        for metric in metrics:
            keys_b = {k for k in before if dict(k)["metric"] == metric}
            keys_a = {k for k in after if dict(k)["metric"] == metric}
            common = keys_b & keys_a
            worst = 0.0
            for key in common:
                b, a = before[key], after[key]
                if math.isnan(b) and math.isnan(a):
                    continue
                worst = max(worst, abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf)
            rows.append((lab, metric, len(common), len(keys_a ^ keys_b), worst))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    args = parser.parse_args(argv)
    rows = compare(args.before, args.after)
    print("| lab | metric | rows compared | rows in one run only | max abs difference |")
    print("|---|---|---|---|---|")
    for lab, metric, n, only, worst in rows:
        print(f"| {lab} | {metric} | {n} | {only} | {worst:.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
