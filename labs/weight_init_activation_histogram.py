# %% [markdown]
# # Activations through five layers: how the initial weights shape them
#
# **The claim.** The scale of the initial weights decides whether a network's layers pass a
# usable signal on. Too large (std 1) and sigmoid units saturate at 0 and 1, where their
# gradient vanishes; too small (std 0.01) and every unit outputs nearly the same value, so
# the layers lose their expressiveness. Xavier's scale ($1/\sqrt{n}$, $n$ the number of inputs
# of a unit) keeps sigmoid and tanh activations spread; He's ($\sqrt{2/n}$) does the same for
# ReLU, which zeroes half of its inputs.
#
# The experiment is the book's: 1,000 random inputs of 100 features pass through five
# layers of 100 units (no bias), and we look at the histogram of each layer's activations.
# With `--seeds N` (`COURSEKIT_SEEDS` in a notebook) the inputs and weights are drawn once per
# seed, and each claim is checked in every seed.

# %%
import dataclasses

import keras
import numpy as np
import pandas as pd

from coursekit import results
from coursekit.initializers import He, Normal, Xavier
from coursekit.interactive import ActivationExplorer
from coursekit.lab import Settings, presets, start


@dataclasses.dataclass(frozen=True)
class HistogramSettings(Settings):
    samples: int = 1000
    units: int = 100
    layers: int = 5
    bins: int = 30


PRESETS = presets(HistogramSettings(), samples=200)
lab = start("weight_init_activation_histogram", PRESETS, notebook_seeds=5)
lab.settings, lab.seeds

# %% [markdown]
# ## Four ways to draw the initial weights
#
# All four draw from an untruncated normal distribution; only the standard deviation differs
# (`coursekit.initializers`). Giving each a `SeedGenerator` gives every layer its own draw.

# %%
INITIALIZERS = {
    "std=1": lambda seed: Normal(1.0, seed=seed),
    "std=0.01": lambda seed: Normal(0.01, seed=seed),
    "Xavier": Xavier,
    "He": He,
}


def layer_activations(x, activation, initializer, layers, units):
    """The activations after each of `layers` Dense(units, no bias) + activation layers."""
    outputs = []
    for _ in range(layers):
        x = keras.layers.Dense(units, use_bias=False, kernel_initializer=initializer, activation=activation)(x)
        outputs.append(keras.ops.convert_to_numpy(x))
    return outputs


def activations_of(seed):
    x = np.random.default_rng(seed).standard_normal((settings.samples, settings.units)).astype("float32")
    return {
        (activation, name): layer_activations(
            x, activation, make(seed=keras.random.SeedGenerator(seed)), settings.layers, settings.units
        )
        for activation in ("sigmoid", "relu", "tanh")
        for name, make in INITIALIZERS.items()
    }


settings = lab.settings
by_seed = {seed: activations_of(seed) for seed in lab.seeds}
activations = by_seed[lab.seed]  # the figures show the run's own seed

# %% [markdown]
# ## The histograms
#
# One figure per activation function: a row per initial-weight rule, a column per layer,
# each panel the histogram of that layer's 100,000 activations (30 bins), with their
# standard deviation in the corner. For ReLU, as in the book, the vertical axis is cut at
# 7,000 (scaled to the number of samples): about half of all ReLU outputs are exactly 0, and
# that one bar would otherwise flatten every other. Values outside the plotted range are
# counted in the corner note.

# %%
RANGES = {"sigmoid": (0, 1), "relu": (0, 1), "tanh": (-1, 1)}


def histogram_panels(activation):
    low, high = RANGES[activation]
    cap = 7000 * settings.samples * settings.units / 100_000 if activation == "relu" else None
    panels = []
    for name in INITIALIZERS:
        for layer, values in enumerate(activations[activation, name], start=1):
            outside = float(np.mean((values < low) | (values > high)))
            note = f"std {values.std():.3g}" + (f"\n{outside:.0%} off the axis" if outside >= 0.01 else "")
            panels.append(
                {
                    "title": f"{name}, layer {layer}",
                    "hist": (values.ravel(), settings.bins, (low, high)),
                    "ylim": (0, cap) if cap else None,
                    "note": note,
                    "hide_ticks": layer > 1,
                }
            )
    return panels


for activation in RANGES:
    lab.figure(
        f"histogram_{activation}.png",
        histogram_panels(activation),
        ncols=settings.layers,
        suptitle=f"{activation} activations per layer (rows: initial weights)",
        panel_size=(2.6, 2.1),
    )

# %% [markdown]
# ## Move the knobs
#
# The same experiment with any standard deviation: the slider sets the std of `Normal(std)`
# (the rule "std"), the buttons switch to Xavier's or He's scale. Rows: sigmoid, tanh, ReLU;
# columns: the five layers. Try the std where sigmoid stops saturating, or where ReLU's
# signal neither explodes nor vanishes: near He's $\sqrt{2/100} \approx 0.14$.

# %%
lab.interactive("activations_explorer.png", ActivationExplorer(**settings.to_dict(), seed=lab.seed))

# %% [markdown]
# ## The spread, layer by layer
#
# The standard deviation of each layer's activations, the number the histograms show
# by their width (the mean over the seeds):

# %%
stds = pd.DataFrame(
    {
        (seed, activation, name): [float(a.std()) for a in outputs]
        for seed, found in by_seed.items()
        for (activation, name), outputs in found.items()
    },
    index=pd.RangeIndex(1, settings.layers + 1, name="layer"),
).T.rename_axis(["seed", "activation", "weights"])
spread = stds.groupby(["activation", "weights"], sort=False).mean()
spread.round(4)

# %% [markdown]
# ## What to notice
#
# - **sigmoid, std=1**: the activations pile up at 0 and 1, where the sigmoid's slope is
#   almost 0: the gradients that backpropagation sends through these units vanish.
# - **sigmoid, std=0.01**: everything sits near 0.5. The units all say the same thing; a
#   hundred of them are worth one.
# - **Xavier** keeps sigmoid and tanh spread through all five layers.
# - **ReLU**: with std=0.01 the signal shrinks layer after layer to nothing; with Xavier it
#   still narrows; **He** keeps the same spread in every layer. With std=1 it explodes (most
#   values are off the plotted axis).
#
# Each claim, checked in every seed (the numbers: the last layer's std):

# %%
last = stds[settings.layers].unstack(["activation", "weights"])  # seed x (activation, weights)
first = stds[1].unstack(["activation", "weights"])
checks = [  # (summary key, the claim, whose last-layer std, does it hold)
    ("sigmoid_std_1_saturates", "sigmoid, std=1: saturated (std > 0.4)", ("sigmoid", "std=1"), lambda s: s > 0.4),
    (
        "sigmoid_std_0_01_near_half",
        "sigmoid, std=0.01: all near 0.5 (std < 0.02)",
        ("sigmoid", "std=0.01"),
        lambda s: s < 0.02,
    ),
    (
        "relu_std_0_01_collapses",
        "ReLU, std=0.01: collapsed to 0 (std < 1e-4)",
        ("relu", "std=0.01"),
        lambda s: s < 1e-4,
    ),
    (
        "relu_he_keeps_spread",
        "ReLU, He: over half the first layer's std",
        ("relu", "He"),
        lambda s: s > 0.5 * first["relu", "He"],
    ),
]
claims = {key: (text, results.Claim(holds(last[which]), last[which], "{:.3g}")) for key, text, which, holds in checks}
rows = [
    {"variant": f"{activation}/{name}", "seed": seed, "step": layer, "metric": metric, "value": value}
    for seed, found in by_seed.items()
    for (activation, name), outputs in found.items()
    for layer, a in enumerate(outputs, start=1)
    for metric, value in (("activation_mean", float(a.mean())), ("activation_std", float(a.std())))
]
lab.finish(
    rows,
    {
        "activation_std_last_layer": {f"{a}/{n}": round(float(o[-1].std()), 4) for (a, n), o in activations.items()},
        "layers": settings.layers,
        "over_seeds": {key: claim.to_dict() for key, (_, claim) in claims.items()},
    },
)
pd.DataFrame({text: {"holds": c.where, "last layer's std": c.spread or c.typical} for text, c in claims.values()}).T
