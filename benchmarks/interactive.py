"""How fast the interactive figures redraw when a slider moves (no widget front end needed).

    KERAS_BACKEND=tensorflow python benchmarks/interactive.py
    KERAS_BACKEND=jax python benchmarks/interactive.py

For each figure: the first draw (compilation included), then a run of slider moves, each a
full redraw as in a notebook (`explorer.set(...)`: compute, draw, PNG); printed as the median
and the slowest move. The bowl is also timed with every path computed the eager way (30
`apply_gradients` per optimizer, `coursekit.training.optimizer_path`), side by side in the
same process, to show why the compiled paths are needed.
"""

import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's coursekit

import keras  # noqa: E402
import numpy as np  # noqa: E402

from coursekit.interactive import ActivationExplorer, OptimizerExplorer, RunExplorer  # noqa: E402
from coursekit.plots import Line  # noqa: E402


def moves(explorer, steps):
    """Seconds of each move in `steps` (a list of {control: value})."""
    explorer.widget  # noqa: B018  (builds the controls)
    seconds = []
    for step in steps:
        started = time.perf_counter()
        explorer.set(**step)
        seconds.append(time.perf_counter() - started)
        assert explorer.error is None, explorer.error
    return seconds


def report(name, first, seconds):
    print(
        f"{name:44s} first draw {first:6.2f} s   moves: median {statistics.median(seconds) * 1000:6.1f} ms, "
        f"slowest {max(seconds) * 1000:6.1f} ms ({len(seconds)} moves)"
    )


def timed_first(make):
    started = time.perf_counter()
    explorer = make()
    explorer.fallback_png()
    return explorer, time.perf_counter() - started


def main():
    print(f"backend {keras.backend.backend()}")
    rates = np.geomspace(0.02, 0.5, 25)
    bowl, first = timed_first(OptimizerExplorer)
    report(
        "bowl: Momentum learning rate (compiled)", first, moves(bowl, [{"Momentum learning rate": r} for r in rates])
    )
    report("bowl: Adam beta_1 (compiled)", 0.0, moves(bowl, [{"beta_1": b} for b in np.linspace(0.5, 0.95, 25)]))
    report("bowl: start x (all 12 paths, compiled)", 0.0, moves(bowl, [{"start x": x} for x in np.linspace(-9, 9, 25)]))
    report(
        "bowl: momentum (Keras' SGD retraced)", 0.0, moves(bowl, [{"momentum": m} for m in np.linspace(0.5, 0.95, 10)])
    )

    eager, first = timed_first(OptimizerExplorer)
    for program in eager._programs.values():
        program.mode = "eager"  # as on a backend without compiled paths
    eager._cache.clear()
    report("bowl: start x (all 12 paths, eager)", first, moves(eager, [{"start x": x} for x in np.linspace(-9, 9, 8)]))

    activations, first = timed_first(ActivationExplorer)
    stds = np.geomspace(0.005, 2.0, 20)
    report("activations: std slider", first, moves(activations, [{"std": s} for s in stds]))
    report("activations: Xavier / He buttons", 0.0, moves(activations, [{"rule": r} for r in ["Xavier", "He"] * 5]))

    def panels(value):
        x = np.arange(300)
        return [
            {"title": f"run {value}", "lines": [Line(x, np.sin(x / (10 * value + 1)), band=(x * 0, x * 0 + 0.1))]}
        ] * 2

    values = [0.01, 0.03, 0.1, 0.3, 1.0]
    runs, first = timed_first(lambda: RunExplorer("lambda", [(str(v), v) for v in values], panels, panel_size=(6, 4.5)))
    report("runs: a new run (drawn)", first, moves(runs, [{"run": v} for v in values[1:]]))
    report("runs: a run seen before (cached)", 0.0, moves(runs, [{"run": v} for v in values * 2]))


if __name__ == "__main__":
    main()
