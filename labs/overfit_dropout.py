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
# is multiplied by $1 - 0.2$.

# %%
import dataclasses

import pandas as pd

from coursekit import optimizers, results
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net
from coursekit.plots import accuracy_panel
from coursekit.training import Variant, history_rows


@dataclasses.dataclass(frozen=True)
class DropoutSettings(Settings):
    train_size: int = 300
    hidden_sizes: tuple = (100, 100, 100, 100, 100, 100)
    batch_size: int = 100
    epochs: int = 301
    learning_rate: float = 0.01
    dropout_rate: float = 0.2


PRESETS = presets(DropoutSettings(), epochs=151)
lab = start("overfit_dropout", PRESETS)
lab.settings

# %% [markdown]
# ## The data: 300 training images, and the test set

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size)
pd.Series(dataset.summary())

# %% [markdown]
# ## Two networks: without and with Dropout

# %%
rate = lab.settings.dropout_rate
variants = [
    Variant(
        name,
        multilayer_net(dataset.num_features, lab.settings.hidden_sizes, dropout_rate=dropout, seed=lab.seed),
        optimizers.SGD(lab.settings.learning_rate),
    )
    for name, dropout in (("baseline", 0.0), (f"dropout={rate:g}", rate))
]
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
# ## Training (solid) and test (dashed) accuracy

# %%
lab.figure("accuracy.png", [accuracy_panel(histories, title=f"Dropout (ratio {rate:g})")], panel_size=(7, 4.5))

# %% [markdown]
# ## The gap between training and test accuracy at the end

# %%
final = results.final_accuracies(histories)
lab.finish(
    history_rows(histories, record_loss=False),
    {"final_accuracy": final.round(4).to_dict(orient="index")},
)
final.round(3)

# %% [markdown]
# ## What to notice
#
# - With Dropout the training accuracy rises more slowly and stays below 100%, and the gap
#   to the test accuracy is far smaller. (The book: train 0.67, test 0.548 at epoch 301.)
# - Dropout trains, in effect, many thinned networks that share weights, and averages them
#   at inference (the scaling by $1 - $ ratio).

# %%
print(
    f"gap without Dropout {final.loc['baseline', 'gap']:.3f}, "
    f"with Dropout {rate:g} {final.loc[f'dropout={rate:g}', 'gap']:.3f}"
)
