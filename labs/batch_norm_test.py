# %% [markdown]
# # Batch Normalization across initial-weight scales
#
# **The claim.** Batch Normalization makes learning faster and far less dependent on the
# initial weights: with it a network learns at almost any weight scale; without it, only a
# narrow band of scales works.
#
# For 16 weight scales from 1 down to 0.0001 (evenly spaced in log scale), a 784-[100]x5-10
# ReLU network is trained twice, with and without `BatchNorm` after every hidden Dense
# layer: SGD (learning rate 0.01), batches of 100, 20 epochs on the first 1,000 training
# images. The book's experiment, all 32 networks on the same minibatches; with `--seeds N`
# (`COURSEKIT_SEEDS` in a notebook) all of it once per seed, to see how much of the finding is luck.

# %%
import dataclasses

import numpy as np
import pandas as pd

from coursekit import optimizers, results
from coursekit.initializers import Normal
from coursekit.interactive import RunExplorer, log_options
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net
from coursekit.plots import Line, by_variant, metric_line, spread
from coursekit.training import Variant, history_rows


@dataclasses.dataclass(frozen=True)
class BatchNormSettings(Settings):
    train_size: int = 1000
    hidden_sizes: tuple = (100, 100, 100, 100, 100)
    batch_size: int = 100
    epochs: int = 20
    learning_rate: float = 0.01
    scales: int = 16


PRESETS = presets(BatchNormSettings(), epochs=10, scales=8)
lab = start("batch_norm_test", PRESETS)
lab.settings, lab.seeds

# %% [markdown]
# ## The data: the first 1,000 training images

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size)
scales = np.logspace(0, -4, num=lab.settings.scales)
pd.Series(dataset.summary())

# %% [markdown]
# ## Two networks per weight scale
#
# In each hidden layer: Dense, then (for "bn") `BatchNorm`, which normalizes each unit over
# the minibatch, $\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}$, and rescales it,
# $y = \gamma \hat x + \beta$; then ReLU. Both networks of a scale start from the same
# weights, drawn with that standard deviation. `lab.variants` builds them once per seed of the
# run: each seed draws its own initial weights and minibatches.


# %%
def make_variants(seed):
    return [
        Variant(
            f"{label}@{scale:.6g}",
            multilayer_net(
                dataset.num_features,
                lab.settings.hidden_sizes,
                weight_init=Normal(float(scale), seed=seed),
                batch_norm=label == "bn",
                seed=seed,
            ),
            optimizers.SGD(lab.settings.learning_rate),
            factors={"weight_scale": float(scale)},
            label=label,
        )
        for scale in scales
        for label in ("bn", "plain")
    ]


variants = lab.variants(make_variants)

# %% [markdown]
# ## Training all of them side by side
#
# The training accuracy is measured after the first update and after every epoch, as in
# the book. A network whose loss overflows (large weights without BatchNorm) is recorded as
# diverged, and the others go on.

# %%
histories = lab.train(
    variants,
    dataset,
    epochs=lab.settings.epochs,
    eval_sets={"train_accuracy": (dataset.x_train, dataset.y_train)},
)

# %% [markdown]
# ## The book's 4x4 grid
#
# One panel per weight scale: training accuracy per epoch with BatchNorm (solid) and
# without (dashed); over several seeds, their mean, and the shaded band from the lowest to the
# highest seed.

# %%
groups = by_variant(histories)  # {("bn", scale): [history of each seed], ...}


def curves(scale):
    return [
        metric_line(groups[label, float(scale)], "train_accuracy", label=text, style=style, color=color)
        for label, text, style, color in (("bn", "with BatchNorm", "-", "C0"), ("plain", "without", "--", "C1"))
    ]


panels = [{"title": f"weight std {scale:.3g}", "lines": curves(scale), "ylim": (0, 1.0)} for scale in scales]
lab.figure(
    "batch_norm.png",
    panels,
    ncols=4,
    panel_size=(3.2, 2.6),
    xlabel="epochs",
    ylabel="training accuracy",
)

# %% [markdown]
# ## The numbers
#
# The final training accuracy at every scale: its mean over the seeds, and in how many seeds
# BatchNorm ends higher.

# %%
final = results.finals(histories, "train_accuracy")  # one row per network and seed
by_seed = final.pivot_table(index=["seed", "weight_scale"], columns="variant", values="value")
higher = (by_seed["bn"] > by_seed["plain"]).rename("BatchNorm ends higher")
wins = higher.groupby("seed").sum()  # per seed: at how many scales BatchNorm ends higher
claim = results.Claim(wins > len(scales) / 2, wins)
table = by_seed.groupby("weight_scale").mean().join(higher.groupby("weight_scale").sum()).sort_index(ascending=False)
table = table.rename(columns={"bn": "with BatchNorm", "plain": "without"}).rename_axis("weight std")
table.round(3)

# %% [markdown]
# ## One scale at a time
#
# Move the slider through the weight scales: on the left the two networks of that scale, on
# the right where that scale sits among all of them (final training accuracy against the
# weight scale; bands: the spread over the seeds).


# %%
def final_line(label, text, style, color):
    per_seed = final[final["variant"] == label].pivot_table(index="weight_scale", columns="seed", values="value")
    mean, band = spread(per_seed.to_numpy().T)
    return Line(per_seed.index.to_numpy(), mean, label=text, style=style, color=color, band=band)


overview = [final_line("bn", "with BatchNorm", "-o", "C0"), final_line("plain", "without", "--x", "C1")]


def scale_panels(scale):
    this_scale = {"title": f"weight std {scale:.3g}", "lines": curves(scale), "xlabel": "epochs", "ylim": (0, 1)}
    every_scale = {"title": "final training accuracy", "lines": overview, "xlabel": "weight std", "ylim": (0, 1)}
    return [this_scale, {**every_scale, "xscale": "log", "vlines": [(scale, None)]}]


explorer = RunExplorer("weight std", log_options(scales), scale_panels, initial=scales[len(scales) // 2])
lab.interactive("batch_norm_by_scale.png", explorer)

# %% [markdown]
# ## What to notice
#
# - Without BatchNorm only a narrow band of scales learns (near He's $\sqrt{2/100} \approx
#   0.14$); too large and the activations explode (the network may even diverge), too small
#   and they vanish.
# - With BatchNorm every layer's inputs are renormalized at every step, so the network
#   learns at almost every scale, and fast.
# - The book: BatchNorm ended higher at 14 of 16 scales, in its one run. Over several seeds
#   (`--seeds 5`) this run says how far that count moves from seed to seed:

# %%
diverged = [name for name, history in histories.items() if history.diverged_at is not None]
first = by_seed.loc[lab.seed]  # the run's own seed: the numbers of a one-seed run
lab.finish(
    history_rows(histories, record_loss=False),
    {
        "scales": len(scales),
        "bn_ends_higher": int(wins[lab.seed]),
        "final_train_accuracy": [
            {
                "weight_scale": float(s),
                "bn": round(float(first.loc[s, "bn"]), 4),
                "plain": round(float(first.loc[s, "plain"]), 4),
            }
            for s in scales
        ],
        "diverged": diverged,
        "over_seeds": claim.to_dict(),
    },
    extra_columns=("weight_scale",),
)
print(
    f"BatchNorm ends higher at {claim.typical} of {len(scales)} scales {claim}"
    f"{' (the median over the seeds)' if claim.seeds > 1 else ''}; diverged: {diverged or 'none'}."
)
