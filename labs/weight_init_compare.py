# %% [markdown]
# # Initial weights on MNIST: std 0.01, Xavier and He for a ReLU network
#
# **The claim.** What the histograms showed decides whether a real network learns: with
# weights of std 0.01 a deep ReLU network does not learn at all, Xavier's weights learn, and
# He's weights, made for ReLU, learn fastest.
#
# Three copies of a 784-[100]x4-10 ReLU network differ only in their initial weights and
# train with SGD (learning rate 0.01) on the same minibatches of 128 images, 2,000 updates; with
# `--seeds N` (`COURSEKIT_SEEDS` in a notebook), all three once per seed.

# %%
import dataclasses
import math

import pandas as pd

from coursekit import optimizers, results
from coursekit.initializers import He, Normal, Xavier
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net
from coursekit.plots import loss_panel
from coursekit.training import Variant, history_rows


@dataclasses.dataclass(frozen=True)
class InitSettings(Settings):
    hidden_sizes: tuple = (100, 100, 100, 100)
    batch_size: int = 128
    iterations: int = 2000
    learning_rate: float = 0.01
    train_size: int | None = None


PRESETS = presets(InitSettings(), iterations=400)
lab = start("weight_init_compare", PRESETS, notebook_seeds=3)
lab.settings, lab.seeds

# %% [markdown]
# ## The data

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size)
pd.Series(dataset.summary())

# %% [markdown]
# ## One network per initial-weight rule
#
# Each initializer gets the same seed, so the three networks start from the same random
# numbers, only scaled differently: std 0.01, $1/\sqrt{n}$ and $\sqrt{2/n}$ (for the first
# layer, $n = 784$; for the others, $n = 100$). `lab.variants` builds the three once per seed.

# %%
INITIALIZERS = {"std=0.01": lambda seed: Normal(0.01, seed=seed), "Xavier": Xavier, "He": He}


def make_variants(seed):
    return [
        Variant(
            name,
            multilayer_net(dataset.num_features, lab.settings.hidden_sizes, weight_init=make(seed=seed), seed=seed),
            optimizers.SGD(lab.settings.learning_rate),
        )
        for name, make in INITIALIZERS.items()
    ]


variants = lab.variants(make_variants)

# %% [markdown]
# ## Training, side by side

# %%
histories = lab.train(variants, dataset, iterations=lab.settings.iterations)

# %% [markdown]
# ## The loss curves
#
# The dotted line is $\ln 10 \approx 2.303$, the loss of a network that gives each of the 10
# classes probability 1/10: the loss of knowing nothing. Over several seeds: the mean curve and
# the band from the lowest to the highest seed.

# %%
panel = loss_panel(histories, title="initial weights (ReLU network, SGD)", ylim=(0, 2.5))
panel["hlines"] = [(math.log(10), "ln 10: guessing")]
lab.figure("loss.png", [panel], panel_size=(7, 4.5))

# %% [markdown]
# ## The numbers
#
# Mean minibatch loss over the last 10% of the updates (a row per seed):

# %%
late = pd.DataFrame({seed: results.late_mean_loss(h) for seed, h in lab.by_seed(histories).items()}).T
late.rename_axis("seed").round(4)

# %% [markdown]
# ## What to notice
#
# - **std=0.01** stays at $\ln 10$: the activations vanish layer by layer (the histogram
#   lab), so the output is the same for every image, and so are the gradients that would
#   have to tell the layers apart. The network does not learn.
# - **He** drops fastest and lowest; **Xavier** learns too, more slowly.
# - The book measured, at update 1,800: Xavier 0.228, He 0.166, std 0.01 about 2.30.

# %%
stuck = results.Claim(late["std=0.01"] > math.log(10) - 0.05, late["std=0.01"], fmt="{:.3f}")
he_first = results.Claim(late["He"] < late["Xavier"], late["Xavier"] - late["He"], fmt="{:.3f}")
lab.finish(
    history_rows(histories),
    {
        "mean_loss_of_last_iterations": late.loc[lab.seed].round(4).to_dict(),
        "last_iterations": lab.settings.iterations // 10,
        "over_seeds": {"std_0_01_stays_at_ln_10": stuck.to_dict(), "he_below_xavier": he_first.to_dict()},
    },
)
print(
    f"std=0.01 stays at ln 10 = {math.log(10):.3f} {stuck.where} (it ends at {stuck.typical}{', ' + stuck.spread if stuck.spread else ''})."
)
print(
    f"He ends below Xavier {he_first.where} ({he_first.typical} lower"
    f"{', ' + he_first.spread if he_first.spread else ''}); "
    f"this run's seed {lab.seed}: He {late.loc[lab.seed, 'He']:.3f} < Xavier {late.loc[lab.seed, 'Xavier']:.3f}."
)
