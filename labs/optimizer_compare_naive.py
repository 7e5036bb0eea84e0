"""Optimizers on a bowl: SGD, Momentum, AdaGrad and Adam on f(x, y) = x^2/20 + y^2.

The function is 20 times steeper along y than along x. From (-7, 2), thirty
updates of each optimizer trace its path on the contour plot: SGD zig-zags
across the valley, Momentum rolls like a ball, AdaGrad and Adam adapt the step
per coordinate. Deterministic: the positions follow the course formulas exactly.
"""

import sys

import numpy as np
from keras import ops

from coursekit import optimizers
from coursekit.experiment import Lab, LabResult, main
from coursekit.plots import Line, plot_panels
from coursekit.training import optimizer_path

LEARNING_RATES = {"SGD": 0.95, "Momentum": 0.1, "AdaGrad": 1.5, "Adam": 0.3}
PRESETS = {
    "full": {"start": [-7.0, 2.0], "steps": 30, "learning_rates": LEARNING_RATES},
    "smoke": {"start": [-7.0, 2.0], "steps": 30, "learning_rates": LEARNING_RATES},
}


def bowl(w):
    """f(x, y) = x^2 / 20 + y^2"""
    return w[0] ** 2 / 20.0 + w[1] ** 2


def run(ctx):
    settings = ctx.settings
    paths = {
        name: optimizer_path(optimizers.get(name, learning_rate=lr), bowl, settings["start"], settings["steps"])
        for name, lr in settings["learning_rates"].items()
    }

    # ## Results: x and y after every update (step 0 is the start).
    rows = [
        {"variant": name, "step": step, "metric": metric, "value": float(path[step, axis])}
        for name, path in paths.items()
        for step in range(len(path))
        for axis, metric in enumerate(("x", "y"))
    ]

    # ## Figure: the reference's 2x2 contour plots with each path.
    X, Y = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
    Z = ops.convert_to_numpy(bowl(np.stack([X, Y])))
    Z[Z > 7] = 0  # as the reference: flat beyond the plotted levels
    panels = [
        {
            "title": name,
            "contour": (X, Y, Z),
            "lines": [Line(path[:, 0], path[:, 1], style="-", marker="o", color="red")],
            "xlim": (-10, 10),
            "ylim": (-10, 10),
            "xlabel": "x",
            "ylabel": "y",
        }
        for name, path in paths.items()
    ]
    figure = plot_panels(panels, ctx.figure_path("optimizer_paths.png"), ncols=2, show=ctx.show, legend_panel=None)
    summary = {f"{name} final (x, y)": [round(float(v), 3) for v in path[-1]] for name, path in paths.items()}
    return LabResult(rows, [figure], summary)


LAB = Lab(
    "optimizer_compare_naive",
    "SGD, Momentum, AdaGrad, Adam paths on f(x,y)=x^2/20+y^2 from (-7, 2)",
    PRESETS,
    run,
    uses_dataset=False,
)

if __name__ == "__main__":
    sys.exit(main(LAB))
