# %% [markdown]
# # Optimizers on MNIST: SGD, Momentum, AdaGrad and Adam training the same network
#
# **The claim.** On a real network the differences seen on the bowl remain: plain SGD learns
# slowest; Momentum, AdaGrad and Adam bring the training loss down much faster.
#
# Four copies of one network (784 inputs, four hidden layers of 100 ReLU units, 10 outputs,
# He initial weights) differ only in their optimizer, each at its default learning rate:
# SGD 0.01, Momentum 0.01, AdaGrad 0.01, Adam 0.001. They see the *same* minibatches of 128
# images, drawn with replacement as in the book, for 2,000 updates; with `--seeds N`
# (`COURSEKIT_SEEDS` in a notebook), all four once per seed.

# %%
import dataclasses

import pandas as pd

from coursekit import optimizers, results
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net
from coursekit.plots import loss_panel
from coursekit.training import Variant, history_rows


@dataclasses.dataclass(frozen=True)
class OptimizerSettings(Settings):
    optimizers: tuple = ("SGD", "Momentum", "AdaGrad", "Adam")
    hidden_sizes: tuple = (100, 100, 100, 100)
    batch_size: int = 128
    iterations: int = 2000
    train_size: int | None = None  # None: every training image


PRESETS = presets(OptimizerSettings(), iterations=300)
lab = start("optimizer_compare_mnist", PRESETS, notebook_seeds=3)
lab.settings, lab.seeds

# %% [markdown]
# ## The data
#
# MNIST's images become vectors of 784 pixels in [0, 1]. (Without internet the kit falls
# back to scikit-learn's 8x8 digits and says so; point it to MNIST files with
# `--dataset idx:PATH` or `COURSEKIT_DATASET`.)

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size)
pd.Series(dataset.summary())

# %% [markdown]
# ## One network per optimizer
#
# `multilayer_net` builds the book's network from the kit's components; the same `seed`
# gives all four the same initial weights, so only the optimizer differs. `lab.variants`
# builds the four once per seed of the run.


# %%
def make_variants(seed):
    return [
        Variant(name, multilayer_net(dataset.num_features, lab.settings.hidden_sizes, seed=seed), optimizers.get(name))
        for name in lab.settings.optimizers
    ]


variants = lab.variants(make_variants)
[layer.name for layer in variants[0].model.layers]

# %% [markdown]
# ## Training, side by side
#
# `lab.train` (the kit's `train_variants`) draws each minibatch once and updates all four
# networks on it, recording every update's minibatch loss.

# %%
histories = lab.train(variants, dataset, iterations=lab.settings.iterations)

# %% [markdown]
# ## The loss curves
#
# The book smooths each curve (an 11-point Kaiser window) so that the trend shows through the
# noise of single minibatches. Over several seeds: the mean curve, and a band from the lowest
# to the highest seed.

# %%
lab.figure("loss.png", [loss_panel(histories, title="optimizer comparison", ylim=(0, 1))], panel_size=(7, 4.5))

# %% [markdown]
# ## The numbers
#
# The mean minibatch loss over the last 10% of the updates, for each optimizer (a row per seed):

# %%
late = pd.DataFrame({seed: results.late_mean_loss(h) for seed, h in lab.by_seed(histories).items()}).T
late.rename_axis("seed").round(4)

# %% [markdown]
# ## What to notice
#
# - SGD's loss is the highest at the end: with one global step size it must stay small
#   enough for the steepest direction, and so crawls along the flat ones.
# - The book measured, at update 1,900: SGD 0.150, Momentum 0.050, AdaGrad 0.016, Adam 0.032.
#   The exact values depend on the data and the draw of minibatches; the ordering "SGD
#   slowest, the other three far lower" is the finding, and it must hold in every seed.

# %%
ratio = late["SGD"] / late.drop(columns="SGD").min(axis=1)  # SGD's final loss over the lowest one
claim = results.Claim(late.idxmax(axis=1) == "SGD", ratio, fmt="{:.0f}")
lab.finish(
    history_rows(histories),
    {
        "mean_loss_of_last_iterations": late.loc[lab.seed].round(4).to_dict(),
        "last_iterations": lab.settings.iterations // 10,
        "over_seeds": claim.to_dict(),
    },
)
spread = f" (the median; {claim.spread} over the seeds)" if claim.spread else ""
print(f"SGD ends with the highest final loss {claim.where}, {claim.typical}x the lowest{spread}.")
