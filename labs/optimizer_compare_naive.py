# %% [markdown]
# # Optimizers on a bowl: SGD, Momentum, AdaGrad and Adam
#
# **The claim.** When a loss is much steeper in one direction than in another, plain SGD
# zig-zags across the valley and crawls along it; Momentum, AdaGrad and Adam take smoother
# paths to the minimum.
#
# The test function is the book's bowl $f(x, y) = \frac{x^2}{20} + y^2$, twenty times steeper
# along $y$ than along $x$, with its minimum at the origin. Each optimizer starts at
# $(-7, 2)$ and makes 30 updates. The optimizers are the kit's Keras classes
# (`coursekit.optimizers`), the same ones the other labs train networks with.

# %%
import dataclasses

import numpy as np
import pandas as pd
from keras import ops

from coursekit import optimizers
from coursekit.interactive import OptimizerExplorer
from coursekit.lab import Settings, presets, start
from coursekit.plots import Line
from coursekit.training import optimizer_path


@dataclasses.dataclass(frozen=True)
class BowlSettings(Settings):
    start: tuple = (-7.0, 2.0)
    steps: int = 30
    learning_rates: tuple = (("SGD", 0.95), ("Momentum", 0.1), ("AdaGrad", 1.5), ("Adam", 0.3))  # the book's


PRESETS = presets(BowlSettings())  # 30 updates take a moment: the smoke preset is the full one
lab = start("optimizer_compare_naive", PRESETS)
lab.settings

# %% [markdown]
# ## The function
#
# The optimizers never see this formula: Keras differentiates it, and each update only uses
# the gradient at the current point, $\left(\frac{x}{10},\ 2y\right)$. At the start that is
# $(-0.7, 4)$: the gradient points mostly along $y$, although the minimum lies along $x$.


# %%
def bowl(w):
    """f(x, y) = x^2 / 20 + y^2"""
    return w[0] ** 2 / 20.0 + w[1] ** 2


# %% [markdown]
# ## Thirty updates of each optimizer
#
# `optimizer_path` calls the optimizer's `apply_gradients` 30 times on one Keras variable
# holding $(x, y)$ and records every position. The learning rates are the book's:
# each is about the largest at which that optimizer still behaves.

# %%
paths = {
    name: optimizer_path(optimizers.get(name, learning_rate=rate), bowl, lab.settings.start, lab.settings.steps)
    for name, rate in lab.settings.learning_rates
}
final = pd.DataFrame({name: path[-1] for name, path in paths.items()}, index=["x", "y"]).T
final["distance to the minimum"] = np.hypot(final["x"], final["y"])
final.round(3)

# %% [markdown]
# ## The paths on the contour plot
#
# The book's figure: the contour lines of $f$, the minimum (+), and each optimizer's 30
# updates (red dots, joined in order).

# %%
X, Y = np.meshgrid(np.arange(-10, 10, 0.01), np.arange(-5, 5, 0.01))
Z = ops.convert_to_numpy(bowl(np.stack([X, Y])))
Z[Z > 7] = 0  # as the book: no contour lines beyond the plotted levels
panels = [
    {
        "title": name,
        "contour": (X, Y, Z),
        "lines": [Line(path[:, 0], path[:, 1], style="-", marker="o", color="red")],
        "xlim": (-10, 10),
        "ylim": (-5, 5),
        "xlabel": "x",
        "ylabel": "y",
    }
    for name, path in paths.items()
]
lab.figure("optimizer_paths.png", panels, ncols=2, legend_panel=None, panel_size=(5, 4.2))

# %% [markdown]
# ## Move the knobs
#
# The same bowl with sliders: a learning rate per optimizer, Momentum's friction, RMSprop's
# $\rho$, Adam's $\beta_1$ and $\beta_2$, and the start point. Each red path is 30 updates of the
# kit's own optimizer (Nesterov and RMSprop too); the dashed path beside it is Keras' built-in
# (`keras.optimizers.SGD`, `SGD(momentum=...)`, `SGD(nesterov=True)`, `Adagrad`, `RMSprop`,
# `Adam`), and each panel says where the paths end. Where the two coincide the rules are the
# same; Keras' AdaGrad differs (its history starts at 0.1, so its first steps are shorter),
# and its RMSprop only by $\epsilon$ inside the square root (its default $\rho$ is 0.9, but here
# both get the slider's). Try SGD above 1.0, where every step overshoots more than the last,
# or Momentum at 0.5 instead of 0.9.

# %%
rates = dict(lab.settings.learning_rates)
explorer = OptimizerExplorer(bowl, start=lab.settings.start, steps=lab.settings.steps, learning_rates=rates)
lab.interactive("optimizer_explorer.png", explorer)

# %% [markdown]
# ## What to notice
#
# - **SGD** overshoots along the steep $y$ direction at every step (the zig-zag) and creeps
#   along the flat $x$ direction: after 30 updates it is still far from the minimum in $x$.
# - **Momentum** accumulates the consistent $x$ component of the gradient like a ball
#   rolling downhill, and overshoots the minimum before coming back.
# - **AdaGrad** divides each coordinate's step by the root of its squared-gradient history:
#   the large $y$ steps shrink at once, and the path bends straight towards the minimum.
# - **Adam** combines both: momentum in its first moment, AdaGrad-like scaling in its second.
#
# The updates are deterministic, so the positions must equal the book's exactly. (With no
# random numbers in it, every seed gives the same paths: `--seeds N` changes nothing here.)
# This run:

# %%
rows = [
    {"variant": name, "seed": lab.seed, "step": step, "metric": metric, "value": float(path[step, axis])}
    for name, path in paths.items()
    for step in range(len(path))
    for axis, metric in enumerate(("x", "y"))
]
book = {"SGD": (-0.350, 0.085), "Momentum": (0.896, 0.088), "AdaGrad": (-0.120, 0.0), "Adam": (0.136, 0.318)}
lab.finish(
    rows,
    {
        "final_position": {name: [round(float(v), 4) for v in path[-1]] for name, path in paths.items()},
        "steps": lab.settings.steps,
    },
)
pd.DataFrame(
    {
        "this run (x, y)": {name: tuple(np.round(path[-1], 3)) for name, path in paths.items()},
        "the book (x, y)": book,
    }
)
