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
# so every update also pulls each weight towards 0 by $\lambda W$.

# %%
import dataclasses

import pandas as pd

from coursekit import optimizers, results
from coursekit.lab import Settings, presets, start
from coursekit.models import multilayer_net
from coursekit.plots import accuracy_panel
from coursekit.training import Variant, history_rows


@dataclasses.dataclass(frozen=True)
class WeightDecaySettings(Settings):
    train_size: int = 300
    hidden_sizes: tuple = (100, 100, 100, 100, 100, 100)
    batch_size: int = 100
    epochs: int = 201
    learning_rate: float = 0.01
    weight_decay: float = 0.1


PRESETS = presets(WeightDecaySettings(), epochs=101)
lab = start("overfit_weight_decay", PRESETS)
lab.settings

# %% [markdown]
# ## The data: 300 training images, and the test set

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size)
pd.Series(dataset.summary())

# %% [markdown]
# ## Two networks: without and with weight decay
#
# `multilayer_net(weight_decay=λ)` puts the kit's `WeightDecay(λ)` regularizer on every
# Dense kernel (the output layer's too), never on the biases.

# %%
lam = lab.settings.weight_decay
variants = [
    Variant(
        name,
        multilayer_net(dataset.num_features, lab.settings.hidden_sizes, weight_decay=decay, seed=lab.seed),
        optimizers.SGD(lab.settings.learning_rate),
    )
    for name, decay in (("baseline", 0.0), (f"lambda={lam:g}", lam))
]

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
# ## Training (solid) and test (dashed) accuracy

# %%
lab.figure("accuracy.png", [accuracy_panel(histories, title=f"weight decay (lambda={lam:g})")], panel_size=(7, 4.5))

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
# - The baseline reaches 100% on its 300 images while the test accuracy stays far lower:
#   overfitting.
# - With weight decay the training accuracy stays below 100% and the gap is smaller. (The
#   book: train 0.927, test 0.721 at epoch 200 with $\lambda = 0.1$.)

# %%
print(
    f"gap without decay {final.loc['baseline', 'gap']:.3f}, "
    f"with lambda={lam:g} {final.loc[f'lambda={lam:g}', 'gap']:.3f}"
)
