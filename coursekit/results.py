"""Result files: a tidy results.csv, a config.json, written whole (atomically)."""

import csv
import io
import json
import os
import pathlib
import tempfile

import numpy as np

RESULT_COLUMNS = ("variant", "step", "metric", "value")


def write_atomic(path, text):
    """Write `text` to `path` through a temporary file and a rename: never a half file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
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


def write_json(path, data):
    """Write `data` as indented JSON, atomically (NumPy values become plain numbers)."""
    return write_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def read_results(path):
    """results.csv back as a list of dicts (value as float, step as int)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["step"] = int(row["step"])
        row["value"] = float(row["value"])
    return rows


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
