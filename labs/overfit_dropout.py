# %% [markdown]
# # Overfitting and Dropout
#
# **The claim.** Dropout, which switches off a random part of the units at every training
# step, keeps a big network from memorizing its few training images: it slows the fit of the
# training set and narrows the gap to the test accuracy.
#
# The network and data of the weight-decay lab (784-[100]x6-10, the first 300 images, SGD
# with learning rate 0.01, batches of 100), trained for 301 epochs once plainly and once with
# `Dropout(0.2)` after every hidden activation. The course's dropout: in training each unit
# is kept where a uniform draw exceeds the ratio (no rescaling); at inference every output
# is multiplied by $1 - 0.2$. A few more ratios train beside them, for the slider of the
# figure; with `--seeds N` (`COURSEKIT_SEEDS` in a notebook), all of them once per seed.

# %%
import dataclasses

import pandas as pd

from coursekit import optimizers, results
from coursekit.interactive import RunExplorer, log_options
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net
from coursekit.plots import accuracy_panel, sweep_panel
from coursekit.training import Variant, history_rows


@dataclasses.dataclass(frozen=True)
class DropoutSettings(Settings):
    train_size: int = 300
    hidden_sizes: tuple = (100, 100, 100, 100, 100, 100)
    batch_size: int = 100
    epochs: int = 301
    learning_rate: float = 0.01
    dropout_rate: float = 0.2
    other_rates: tuple = (0.1, 0.3)  # for the slider: the same network, other ratios


PRESETS = presets(DropoutSettings(), epochs=61)
lab = start("overfit_dropout", PRESETS, notebook_seeds=3)
lab.settings, lab.seeds

# %% [markdown]
# ## The data: 300 training images, and the test set

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size)
pd.Series(dataset.summary())

# %% [markdown]
# ## Networks without and with Dropout
#
# All start from the same weights; each Dropout layer draws its own masks.

# %%
rate = lab.settings.dropout_rate
RATES = {"baseline": 0.0} | {f"dropout={v:g}": v for v in sorted({rate, *lab.settings.other_rates})}


def make_variants(seed):
    return [
        Variant(
            name,
            multilayer_net(dataset.num_features, lab.settings.hidden_sizes, dropout_rate=dropout, seed=seed),
            optimizers.SGD(lab.settings.learning_rate),
        )
        for name, dropout in RATES.items()
    ]


variants = lab.variants(make_variants)
[layer.name for layer in variants[1].model.layers]

# %% [markdown]
# ## Training, with both accuracies after every epoch
#
# The accuracies are measured in inference mode: no units dropped, outputs scaled by
# $1 - $ ratio.

# %%
histories = lab.train(
    variants,
    dataset,
    epochs=lab.settings.epochs,
    eval_sets={"train_accuracy": dataset.split("train"), "test_accuracy": dataset.split("test")},
)

# %% [markdown]
# ## The gap between training and test accuracy at the end
#
# For every network (the mean over the seeds):

# %%
finals = pd.concat(
    {seed: results.final_accuracies(h) for seed, h in lab.by_seed(histories).items()}, names=["seed", "variant"]
)
finals.groupby("variant", sort=False).mean().round(3)

# %% [markdown]
# ## Training (solid) and test (dashed) accuracy
#
# Move the slider through the ratios: on the left the baseline and the network with that
# ratio, epoch by epoch; on the right every ratio's final accuracies (the dotted lines: the
# baseline's). Over several seeds the bands span the lowest to the highest seed.


# %%
def rate_panels(value):
    name = f"dropout={value:g}"
    shown = {k: h for k, h in histories.items() if h.variant.label in ("baseline", name)}
    swept = {k: v for k, v in RATES.items() if v > 0}
    return [
        accuracy_panel(shown, title=f"Dropout (ratio {value:g})"),
        sweep_panel(finals, swept, current=value, baseline="baseline", xlabel="ratio", title="at the end", xscale=None),
    ]


options = log_options([v for v in RATES.values() if v > 0], fmt="{:g}")
explorer = RunExplorer("ratio", options, rate_panels, initial=rate, panel_size=(6, 4.5), legend_panel=None)
lab.interactive("accuracy.png", explorer)

# %% [markdown]
# ## What to notice
#
# - With Dropout the training accuracy rises more slowly and stays below 100%, and the gap
#   to the test accuracy is far smaller. (The book: train 0.67, test 0.548 at epoch 301.)
# - Dropout trains, in effect, many thinned networks that share weights, and averages them
#   at inference (the scaling by $1 - $ ratio). The higher the ratio, the slower the fit and
#   the smaller the gap.

# %%
gaps = finals["gap"].unstack("variant")  # seed x network
name = f"dropout={rate:g}"
claim = results.Claim(gaps[name] < gaps["baseline"], gaps["baseline"] - gaps[name], "{:.3f}")
lab.finish(
    history_rows(histories, record_loss=False),
    {"final_accuracy": finals.loc[lab.seed].round(4).to_dict(orient="index"), "over_seeds": claim.to_dict()},
)
print(
    f"gap without Dropout {gaps['baseline'].mean():.3f}, with Dropout {rate:g} {gaps[name].mean():.3f}; "
    f"Dropout narrows it {claim.where} (by {claim.typical}{', ' + claim.spread if claim.spread else ''})."
)
