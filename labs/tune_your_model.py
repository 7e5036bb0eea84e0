# %% [markdown]
# # Tune your own model: keras-tuner's API, K trials at a time
#
# **The claim.** A hyperparameter search is many small trainings of the same network with
# other numbers in it. Trials that share an architecture can train together, stacked into
# one compiled program, each exactly as `model.fit` would train it alone. The kit's tuners
# are keras-tuner's (`RandomSearch`, `BayesianOptimization`, `Hyperband`, `GridSearch`, and
# the chapter's `Narrowing`), with one more argument: `population=K`, the trials trained at
# once.
#
# Here: a small convnet on MNIST, its dropout rate and Adam's learning rate searched at
# random, each trial stopped early when its validation loss stops improving. The model is
# written as any Keras user writes it: nothing of the kit inside it.

# %%
import dataclasses

import keras
import numpy as np
import pandas as pd

from coursekit.lab import Settings, presets, start
from coursekit.plots import Line
from tuning import RandomSearch


@dataclasses.dataclass(frozen=True)
class TuneSettings(Settings):
    train_size: int = 2000
    validation_fraction: float = 0.2
    trials: int = 20
    population: int = 10
    epochs: int = 8
    batch_size: int = 64
    patience: int = 2


PRESETS = presets(TuneSettings(), train_size=400, trials=4, population=2, epochs=2)
lab = start("tune_your_model", PRESETS)
lab.settings

# %% [markdown]
# ## The data: a training split, a validation split to choose on, a test split used once

# %%
dataset = lab.load_dataset(train_size=lab.settings.train_size, validation_fraction=lab.settings.validation_fraction)
shape = (*dataset.image_shape, 1)
x_train, x_val, x_test = (x.reshape(-1, *shape) for x in (dataset.x_train, dataset.x_val, dataset.x_test))
pd.Series(dataset.summary())

# %% [markdown]
# ## The hypermodel: `build(hp)` returns a compiled model
#
# `hp.Float` declares a hyperparameter and returns this trial's value. Numbers that only
# change values (a dropout rate, a learning rate, a regularization strength, momentum)
# keep the trials in one population; a number that changes the architecture (the filters of
# a layer, the number of layers) sends the trials that differ into populations of their own.

# %%


def build(hp):
    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5)),
            keras.layers.Dense(dataset.num_classes),
        ]
    )
    model.compile(
        keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


# %% [markdown]
# ## The search
#
# `search` takes what `fit` takes. `EarlyStopping` is copied for every trial, and each trial
# stops on its own at the epoch `fit` would stop it; the others go on without it.

# %%
tuner = RandomSearch(
    build,
    objective="val_accuracy",
    max_trials=lab.settings.trials,
    population=lab.settings.population,
    seed=lab.seed,
    directory=str(lab.out_dir / "keras_tuner"),
    overwrite=True,
)
tuner.search(
    x_train,
    dataset.y_train,
    validation_data=(x_val, dataset.y_val),
    epochs=lab.settings.epochs,
    batch_size=lab.settings.batch_size,
    callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=lab.settings.patience)],
    verbose=0,
)

# %% [markdown]
# ## The trials, best first
#
# `tuner.trials_dataframe()` has one row per trial: its hyperparameters, its score (the best
# epoch's validation accuracy, as keras-tuner scores it), the epochs it ran, its seconds and
# the population it trained in.

# %%
trials = tuner.trials_dataframe().sort_values("score", ascending=False)
trials

# %% [markdown]
# ## Where the good trials lie

# %%
lab.figure(
    "trials.png",
    [
        {
            "title": "best validation accuracy of every trial",
            "lines": [Line(trials["learning_rate"], trials["score"], style="o", color="C0")],
            "xscale": "log",
            "xlabel": "learning rate",
            "ylabel": "validation accuracy",
        },
        {
            "title": "and its dropout rate",
            "lines": [Line(trials["dropout"], trials["score"], style="o", color="C1")],
            "xlabel": "dropout rate",
            "ylabel": "validation accuracy",
        },
    ],
    ncols=2,
    panel_size=(4.5, 3.5),
)

# %% [markdown]
# ## The best model, on the test set (once)
#
# `get_best_models` loads the best trial's weights of its best epoch (or, where they were not
# kept, trains it again with its seed: the same model).

# %%
best_model = tuner.get_best_models(1)[0]
best = tuner.get_best_hyperparameters(1)[0].values
test = best_model.evaluate(x_test, dataset.y_test, verbose=0, return_dict=True)
rows = [
    {"variant": trial_id, "step": observation.step + 1, "metric": metric, "value": observation.mean()}
    for trial_id, trial in sorted(tuner.oracle.trials.items())
    for metric in ("accuracy", "val_accuracy")
    for observation in trial.metrics.get_history(metric)
]
lab.finish(
    rows,
    {
        "trials": len(trials),
        "best_val_accuracy": float(trials["score"].iloc[0]),
        "best_learning_rate": float(best["learning_rate"]),
        "best_dropout": float(best["dropout"]),
        "test_accuracy_of_best": float(test["accuracy"]),
        "trials_stopped_early": int((trials["epochs"] < lab.settings.epochs).sum()),
        "search_seconds": float(np.nansum(trials["seconds"])),
    },
)
pd.Series(test).round(4)

# %% [markdown]
# ## What to notice
#
# - The trials trained `population` at a time, each as `fit` would have trained it alone: the
#   same losses and accuracies, epoch by epoch (the kit's tests hold them to that).
# - Early stopping cut some trials short; they stopped costing compute at that epoch.
# - The validation split chose the model; the test set measured it once, at the end.

# %%
print(
    f"best validation accuracy {trials['score'].iloc[0]:.3f} (learning rate {best['learning_rate']:.2g}, "
    f"dropout {best['dropout']:.2f}); its test accuracy {test['accuracy']:.3f}; "
    f"{int((trials['epochs'] < lab.settings.epochs).sum())} of {len(trials)} trials stopped early."
)
