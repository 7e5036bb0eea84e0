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
# images. The book's experiment, all 32 networks on the same minibatches.

# %%
import dataclasses

import numpy as np
import pandas as pd

from coursekit import optimizers
from coursekit.initializers import Normal
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net
from coursekit.plots import Line
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
lab.settings

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
# weights, drawn with that standard deviation.

# %%
variants = [
    Variant(
        f"{label}@{scale:.6g}",
        multilayer_net(
            dataset.num_features,
            lab.settings.hidden_sizes,
            weight_init=Normal(float(scale), seed=lab.seed),
            batch_norm=label == "bn",
            seed=lab.seed,
        ),
        optimizers.SGD(lab.settings.learning_rate),
        factors={"weight_scale": float(scale)},
        label=label,
    )
    for scale in scales
    for label in ("bn", "plain")
]

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
# without (dashed).

# %%
pairs = [(histories[variants[2 * i].name], histories[variants[2 * i + 1].name]) for i in range(len(scales))]
panels = []
for scale, (bn, plain) in zip(scales, pairs):
    lines = [
        Line(*zip(*history.metrics["train_accuracy"]), label=label, style=style, markevery=2)
        for history, label, style in ((bn, "with BatchNorm", "-"), (plain, "without", "--"))
    ]
    panels.append({"title": f"weight std {scale:.3g}", "lines": lines, "ylim": (0, 1.0)})
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
# The final training accuracy at every scale:

# %%
final = pd.DataFrame(
    {
        "with BatchNorm": [bn.final("train_accuracy") for bn, _ in pairs],
        "without": [plain.final("train_accuracy") for _, plain in pairs],
    },
    index=pd.Index([float(f"{s:.3g}") for s in scales], name="weight std"),
)
final["BatchNorm ends higher"] = final["with BatchNorm"] > final["without"]
diverged = [name for name, history in histories.items() if history.diverged_at is not None]
lab.finish(
    history_rows(histories, record_loss=False),
    {
        "scales": len(scales),
        "bn_ends_higher": int(final["BatchNorm ends higher"].sum()),
        "final_train_accuracy": [
            {
                "weight_scale": float(scale),
                "bn": round(bn.final("train_accuracy"), 4),
                "plain": round(plain.final("train_accuracy"), 4),
            }
            for scale, (bn, plain) in zip(scales, pairs)
        ],
        "diverged": diverged,
    },
    extra_columns=("weight_scale",),
)
final.round(3)

# %% [markdown]
# ## What to notice
#
# - Without BatchNorm only a narrow band of scales learns (near He's $\sqrt{2/100} \approx
#   0.14$); too large and the activations explode (the network may even diverge), too small
#   and they vanish.
# - With BatchNorm every layer's inputs are renormalized at every step, so the network
#   learns at almost every scale, and fast.
# - The book: BatchNorm ended higher at 14 of 16 scales.

# %%
print(
    f"BatchNorm ends higher at {int(final['BatchNorm ends higher'].sum())} of {len(scales)} scales; diverged: {diverged or 'none'}."
)
