# %% [markdown]
# # Overfitting and weight decay
#
# **The claim.** A big network trained on few images fits them perfectly while its accuracy
# on new images lags far behind: it overfits. Weight decay, a penalty on large weights,
# narrows that gap between training and test accuracy.
#
# The book's experiment: a 784-[100]x6-10 network on only the first 300 training images
# (SGD, learning rate 0.01, batches of 100, 201 epochs), once plainly and once with weight
# decay $\lambda = 0.1$: the loss gets $\frac{\lambda}{2}\sum W^2$ over every weight matrix,
# so every update also pulls each weight towards 0 by $\lambda W$. A few more lambdas train
# beside them, for the slider of the figure; with `--seeds N` (`COURSEKIT_SEEDS` in a
# notebook), all of them once per seed.

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
class WeightDecaySettings(Settings):
    train_size: int = 300
    hidden_sizes: tuple = (100, 100, 100, 100, 100, 100)
    batch_size: int = 100
    epochs: int = 201
    learning_rate: float = 0.01
    weight_decay: float = 0.1
    other_lambdas: tuple = (0.03, 0.3)  # for the slider: the same network, other lambdas


PRESETS = presets(WeightDecaySettings(), epochs=61)
lab = start("overfit_weight_decay", PRESETS, notebook_seeds=3)
lab.settings, lab.seeds

# %% [markdown]
# ## The data: 300 training images, and the test set

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size)
pd.Series(dataset.summary())

# %% [markdown]
# ## Networks without and with weight decay
#
# `multilayer_net(weight_decay=λ)` puts the kit's `WeightDecay(λ)` regularizer on every
# Dense kernel (the output layer's too), never on the biases. All start from the same weights.

# %%
lam = lab.settings.weight_decay
LAMBDAS = {"baseline": 0.0} | {f"lambda={v:g}": v for v in sorted({lam, *lab.settings.other_lambdas})}


def make_variants(seed):
    return [
        Variant(
            name,
            multilayer_net(dataset.num_features, lab.settings.hidden_sizes, weight_decay=decay, seed=seed),
            optimizers.SGD(lab.settings.learning_rate),
        )
        for name, decay in LAMBDAS.items()
    ]


variants = lab.variants(make_variants)

# %% [markdown]
# ## Training, with both accuracies after every epoch

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
# Move the slider through the lambdas: on the left the baseline and the network with that
# lambda, epoch by epoch; on the right every lambda's final accuracies (the dotted lines: the
# baseline's). Over several seeds the bands span the lowest to the highest seed.


# %%
def lambda_panels(value):
    name = f"lambda={value:g}"
    shown = {k: h for k, h in histories.items() if h.variant.label in ("baseline", name)}
    swept = {k: v for k, v in LAMBDAS.items() if v > 0}
    return [
        accuracy_panel(shown, title=f"weight decay (lambda={value:g})"),
        sweep_panel(finals, swept, current=value, baseline="baseline", xlabel="lambda", title="at the end"),
    ]


options = log_options([v for v in LAMBDAS.values() if v > 0], fmt="{:g}")
explorer = RunExplorer("lambda", options, lambda_panels, initial=lam, panel_size=(6, 4.5), legend_panel=None)
lab.interactive("accuracy.png", explorer)

# %% [markdown]
# ## What to notice
#
# - The baseline reaches 100% on its 300 images while the test accuracy stays far lower:
#   overfitting.
# - With weight decay the training accuracy stays below 100% and the gap is smaller. (The
#   book: train 0.927, test 0.721 at epoch 200 with $\lambda = 0.1$.) The larger the lambda, the
#   smaller the gap, until the network can no longer fit even its training images.

# %%
gaps = finals["gap"].unstack("variant")  # seed x network
claim = results.Claim(gaps[f"lambda={lam:g}"] < gaps["baseline"], gaps["baseline"] - gaps[f"lambda={lam:g}"], "{:.3f}")
lab.finish(
    history_rows(histories, record_loss=False),
    {"final_accuracy": finals.loc[lab.seed].round(4).to_dict(orient="index"), "over_seeds": claim.to_dict()},
)
print(
    f"gap without decay {gaps['baseline'].mean():.3f}, with lambda={lam:g} {gaps[f'lambda={lam:g}'].mean():.3f}; "
    f"weight decay narrows it {claim.where} (by {claim.typical}{', ' + claim.spread if claim.spread else ''})."
)
