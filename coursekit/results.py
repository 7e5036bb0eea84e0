"""Result files: a tidy results.csv, a config.json, written whole (atomically), and read back as data.

from coursekit import results
frame = results.load("results/batch_norm_test")          # results.csv as a tidy DataFrame
trials = results.load("results/tuning/trials.csv")       # the search's trials, one row each
config = results.load_json("results/batch_norm_test/config.json")
"""

import csv
import io
import json
import math
import os
import pathlib
import tempfile

import numpy as np

RESULT_COLUMNS = ("variant", "step", "metric", "value")


def write_atomic(path, text):
    """Write `text` (str, or bytes for a binary file) to `path` through a temporary file and a rename: never a half file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _plain(value):
    """NumPy scalars and arrays to plain Python for CSV/JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


def write_csv(path, rows, columns):
    """Write dict rows as CSV with the given column order, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _plain(value) for key, value in row.items()})
    return write_atomic(path, buffer.getvalue())


def write_results(path, rows, extra_columns=()):
    """results.csv in the tidy long form `variant,step,metric,value` (+ factor columns)."""
    return write_csv(path, rows, (*RESULT_COLUMNS[:1], *extra_columns, *RESULT_COLUMNS[1:]))


def _json_default(value):
    plain = _plain(value)
    if plain is value:
        raise TypeError(f"cannot write {type(value).__name__} to JSON")
    return plain


def strict_json(value):
    """`value` with NumPy numbers made plain and every NaN or infinity made None: JSON has no NaN."""
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_json(path, data):
    """Write `data` as indented, strict JSON (NaN and inf as null), atomically."""
    return write_atomic(path, json.dumps(strict_json(data), indent=2, allow_nan=False, default=_json_default) + "\n")


def load(path):
    """A lab's results.csv (or a folder holding one), or the search's trials.csv, as a pandas DataFrame.

    results.csv is tidy: one row per `variant, [factor columns,] step, metric, value`, with
    `step` an integer and `value` a float, ready for `frame.pivot_table(...)` or a plot.
    trials.csv has one row per trial, every hyperparameter a column.
    """
    import pandas as pd

    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise OSError(f"no results file at {path}")
    frame = pd.read_csv(path)
    if set(RESULT_COLUMNS) <= set(frame.columns):
        frame = frame.astype({"variant": str, "metric": str, "step": "int64", "value": "float64"})
    return frame


def final_accuracies(histories, train="train_accuracy", test="test_accuracy"):
    """Each variant's last training and test accuracy and their gap (train - test), as a DataFrame."""
    import pandas as pd

    frame = pd.DataFrame({name: {"train": h.final(train), "test": h.final(test)} for name, h in histories.items()}).T
    frame["gap"] = frame["train"] - frame["test"]
    return frame


def finals(histories, metric):
    """Each history's last value of `metric`, tidy: one row per variant and seed.

    Columns: `variant` (its label), its factors (`seed` among them, see `coursekit.lab.Lab.variants`)
    and `value`, ready for `frame.pivot_table(index="seed", columns="variant", values="value")`.
    """
    import pandas as pd

    rows = [
        {"variant": h.variant.label or name, **h.variant.factors, "value": h.final(metric)}
        for name, h in histories.items()
    ]
    return pd.DataFrame(rows)


def late_mean_loss(histories, fraction=0.1):
    """Each variant's mean minibatch loss over the last `fraction` of its updates, as a pandas Series."""
    import pandas as pd

    tail = max(int(len(next(iter(histories.values())).losses) * fraction), 1)
    means = {name: float(np.mean(h.losses[-tail:])) for name, h in histories.items()}
    return pd.Series(means, name=f"mean loss, last {tail} updates")


class Claim:
    """A lab's claim checked in each seed of a run, with the number it rests on in each.

    `holds`: `{seed: bool}`; `values`: `{seed: number}` (optional), e.g. the count of weight
    scales where BatchNorm ends higher. `str(claim)` is "in K of N seeds", followed, over several
    seeds, by "; LOW to HIGH" (the values' range, formatted with `fmt`); `claim.typical` is
    the values' median (the value itself for one seed).

        wins = {seed: 14, ...}
        claim = Claim({s: w > 8 for s, w in wins.items()}, wins)
        f"BatchNorm ends higher at {claim.typical} of 16 scales {claim}"
        # "BatchNorm ends higher at 14 of 16 scales in 5 of 5 seeds; 13 to 15"
    """

    def __init__(self, holds, values=None, fmt="{:g}"):
        self.holds = {int(seed): bool(value) for seed, value in holds.items()}
        self.values = None if values is None else {int(seed): float(value) for seed, value in values.items()}
        self.fmt = fmt

    @property
    def seeds(self):
        return len(self.holds)

    @property
    def holds_in(self):
        return sum(self.holds.values())

    @property
    def typical(self):
        """The median of the values over the seeds, formatted."""
        return self.fmt.format(float(np.median(list(self.values.values())))) if self.values else ""

    @property
    def where(self):
        """ "in K of N seeds"."""
        return f"in {self.holds_in} of {self.seeds} seed{'s' if self.seeds != 1 else ''}"

    @property
    def spread(self):
        """ "LOW to HIGH": the values' range over the seeds (empty for one seed, or without values)."""
        if not self.values or self.seeds < 2:
            return ""
        values = self.values.values()
        return f"{self.fmt.format(min(values))} to {self.fmt.format(max(values))}"

    def __str__(self):
        return f"{self.where}; {self.spread}" if self.spread else self.where

    def to_dict(self):
        """For config.json's summary: `{"seeds": N, "holds_in": K, "per_seed": {seed: value}}`."""
        summary = {"seeds": self.seeds, "holds_in": self.holds_in}
        if self.values is not None:
            summary["per_seed"] = dict(self.values)
        return summary


def load_json(path):
    """A config.json (or any JSON the kit wrote) as a dict."""
    with open(path) as handle:
        return json.load(handle)


def smooth_curve(values):
    """The reference's smoothing: an 11-point Kaiser window (beta 2), mirror-padded.

    Returns an array of the same length as `values` (shorter series are returned as is).
    """
    x = np.asarray(values, dtype=np.float64)
    window_len = 11
    if len(x) < window_len:
        return x.copy()
    s = np.r_[x[window_len - 1 : 0 : -1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5 : len(y) - 5]
