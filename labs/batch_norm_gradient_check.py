# %% [markdown]
# # Gradient check through a BatchNorm network
#
# **The claim.** Backpropagation through Batch Normalization is right: the gradients that
# automatic differentiation computes agree with the slope measured numerically, parameter
# by parameter, to round-off.
#
# A 784-[100, 100]-10 network with `BatchNorm` computes its loss on a batch of 10 images
# in training mode, in float64. For a sample of each parameter's entries we compare the
# backend's gradient with the central difference $\frac{L(w + h) - L(w - h)}{2h}$,
# $h = 10^{-5}$. (With a batch of one image BatchNorm's output is constant, $x - \mu = 0$,
# so the batch is larger than one.) With `--seeds N` (`COURSEKIT_SEEDS` in a notebook) the
# check runs once per seed: other initial weights, other sampled entries.

# %%
import dataclasses

import keras
import numpy as np
import pandas as pd

from coursekit import results, runtime
from coursekit.gradcheck import autodiff_gradients, numerical_gradients, relative_error, sample_indices
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net


@dataclasses.dataclass(frozen=True)
class GradientCheckSettings(Settings):
    batch: int = 10
    hidden_sizes: tuple = (100, 100)
    entries_per_parameter: int = 40


PRESETS = presets(GradientCheckSettings(), batch=4, hidden_sizes=(10, 10))
lab = start("batch_norm_gradient_check", PRESETS, notebook_seeds=3)
lab.settings, lab.seeds

# %% [markdown]
# ## The batch
#
# The first training images (10 in the full preset), whose loss both methods differentiate.

# %%
settings = lab.settings
dataset = lab.load_dataset(train_size=settings.batch)
dataset.x_train.shape

# %% [markdown]
# ## Both gradients, in float64
#
# `runtime.float64()` makes Keras compute in double precision inside the block: central
# differences lose about half of the digits, and float32 would not leave enough to compare.
# Each of the 10 parameters (3 Dense kernels and biases, 2 BatchNorm gammas and betas) gets 40
# of its entries checked; each numerical entry costs two forward passes.
#
# The relative error of each parameter is $\max |a - n| / \max(|a| + |n|, 10^{-6})$ over the
# sampled entries. The floor matters for one kind of parameter: the bias of a Dense layer
# right before BatchNorm has a true gradient of exactly 0 (BatchNorm subtracts the batch mean,
# and with it any constant), where both methods return round-off of about $10^{-11}$.


# %%
def gradient_errors(seed):
    """{parameter: max relative error} for the network and sampled entries of `seed`."""
    with runtime.float64():
        x, y = dataset.x_train.astype("float64"), dataset.y_train
        model = multilayer_net(dataset.num_features, settings.hidden_sizes, batch_norm=True, seed=seed)

        def batch_loss():  # classification_loss()'s formula; its Loss object's mean is float32 on PyTorch (Keras 3.15)
            logits = model(x, training=True)
            return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

        variables = model.trainable_variables
        rng = np.random.default_rng(seed)
        chosen = [sample_indices(v.shape, settings.entries_per_parameter, rng) for v in variables]
        automatic = autodiff_gradients(batch_loss, variables)
        numeric = numerical_gradients(batch_loss, variables, indices=chosen)
    return {
        v.path: relative_error([a[i] for i in idx], [n[i] for i in idx], floor=1e-6)
        for v, a, n, idx in zip(variables, automatic, numeric, chosen)
    }


by_seed = {seed: gradient_errors(seed) for seed in lab.seeds}
errors = by_seed[lab.seed]  # the figure shows the run's own seed
# %% [markdown]
# ## The relative error of each parameter
#
# The largest over the seeds, for every parameter:

# %%
table = pd.DataFrame(by_seed).rename_axis("parameter").rename_axis("seed", axis=1)
lab.figure(
    "gradient_check.png",
    [
        {
            "title": "autodiff vs central differences (float64)",
            "bars": ([name.split("/", 1)[-1] for name in table.index], list(table.max(axis=1))),
            "hlines": [(1e-7, "1e-7")],
            "ylabel": "max relative error",
            "yscale": "log",
        }
    ],
    panel_size=(8, 4.5),
)
table.max(axis=1).rename("max relative error").to_frame()

# %% [markdown]
# ## What to notice
#
# - Every parameter agrees to about 7 digits or better: BatchNorm's backward pass (through
#   the batch mean and variance, which depend on every example) is right.
# - The largest error belongs to the bias before the first BatchNorm, whose true gradient
#   is 0: there the relative error compares two round-off values.

# %%
before_batch_norm = [name for name in table.index if "/dense_" in name and name.endswith("/bias")]
rest = table.drop(index=before_batch_norm).max()  # per seed: the largest error of every other parameter
claim = results.Claim(rest < 1e-6, rest, fmt="{:.1e}")
rows = [
    {"variant": name, "seed": seed, "step": 1, "metric": "max_relative_error", "value": err}
    for seed, found in by_seed.items()
    for name, err in found.items()
]
lab.finish(rows, {"max_relative_error": max(errors.values()), "relative_error": errors, "over_seeds": claim.to_dict()})
print(f"largest relative error: {max(errors.values()):.1e} ({max(errors, key=errors.get)})")
print(f"every parameter but the biases before BatchNorm agrees within 1e-6 {claim}.")
