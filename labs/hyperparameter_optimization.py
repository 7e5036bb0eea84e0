# %% [markdown]
# # Hyperparameter search on a validation split: learning rate and weight decay
#
# **The claim.** Hyperparameters are chosen on a *validation* split carved from the training
# data, never on the test set (which would then no longer measure generalization). A random
# search on log scales shows quickly where the good values lie, and the next search can
# narrow its ranges to that region.
#
# The book's search: the first 500 training images, 20% of them held out for validation; a
# 784-[100]x6-10 network trained with SGD (batches of 100, 50 epochs) for 100 random draws
# of the learning rate $10^{U(-6, -2)}$ and the weight decay $10^{U(-8, -4)}$, ranked by the
# final validation accuracy. The search runs on keras-tuner (`python -m tuning`).

# %%
import dataclasses

import numpy as np
import pandas as pd

from coursekit import results
from coursekit.lab import Settings, presets, start
from coursekit.plots import Line
from tuning import SearchSettings, run_search
from tuning.report import curve_rows


@dataclasses.dataclass(frozen=True)
class SearchLabSettings(Settings):
    trials: int = 100
    epochs: int = 50
    train_size: int = 500
    validation_fraction: float = 0.2
    oracle: str = "random"


PRESETS = presets(SearchLabSettings(), trials=12, epochs=15)
lab = start("hyperparameter_optimization", PRESETS)
lab.settings

# %% [markdown]
# ## The search
#
# `run_search` builds a keras-tuner search (`tuning.SearchSettings`: the book's space by
# default), trains every trial with the kit's engine, and writes its report to a folder of its
# own, `search/`: `trials.csv`, `results.csv`, `best_trials.png`, `best_hyperparameters.json`
# and its `config.json`. Only the best trial's model ever sees the test set, once, at the end.

# %%
search_settings = SearchSettings(dataset=lab.dataset_name, seed=lab.seed, **lab.settings.to_dict())
search_dir = lab.out_dir / "search"
summary, tuner = run_search(search_settings, search_dir, overwrite=True, verbose=lab.verbose)
lab.dataset_summary = tuner.dataset.summary()
pd.Series(lab.dataset_summary)

# %% [markdown]
# ## The trials, best first
#
# `coursekit.results.load` reads the report's `trials.csv` into a pandas DataFrame.

# %%
trials = results.load(search_dir / "trials.csv").sort_values("final_val_accuracy", ascending=False)
trials[["trial_id", "learning_rate", "weight_decay", "final_val_accuracy", "final_train_accuracy"]].head(10)

# %% [markdown]
# ## The 20 best trials (the book's figure)
#
# Validation accuracy per epoch (solid) and training accuracy (dashed).

# %%
lab.image(search_dir / "best_trials.png")

# %% [markdown]
# ## Where the good learning rates lie
#
# Each trial's final validation accuracy against its learning rate (log scale).

# %%
good = trials[trials["final_val_accuracy"] >= 0.6]
lab.figure(
    "learning_rates.png",
    [
        {
            "title": "final validation accuracy of every trial",
            "lines": [Line(trials["learning_rate"], trials["final_val_accuracy"], style="o", color="C0")],
            "hlines": [(0.6, "0.6")],
            "xscale": "log",
            "xlabel": "learning rate",
            "ylabel": "validation accuracy",
            "ylim": (0, 1),
        }
    ],
    panel_size=(7, 4.2),
)

# %% [markdown]
# ## What to notice
#
# - Below a learning rate of about $10^{-4}$ the network barely moves in 50 epochs: those
#   trials stay near chance (0.1). The good trials all have learning rates within about one
#   decade below $10^{-2}$; weight decay matters much less in this range.
# - The book: best validation accuracy 0.84 (lr 0.0094, weight decay 2.8e-6), and every
#   trial at 0.6 or more had a learning rate in [0.004, 0.010].
# - The chapter's advice is to narrow the range to where the good values lie and search
#   again. `python -m tuning --oracle narrowing` does that in rounds (see the README).
#
# This run:

# %%
lr_range = (
    [float(f"{good['learning_rate'].min():.3g}"), float(f"{good['learning_rate'].max():.3g}")] if len(good) else None
)
search_config = results.load_json(search_dir / "config.json")
lab.finish(
    curve_rows(tuner.oracle),
    {
        "best_val_accuracy": float(trials["final_val_accuracy"].iloc[0]),
        "best_learning_rate": float(trials["learning_rate"].iloc[0]),
        "best_weight_decay": float(trials["weight_decay"].iloc[0]),
        "test_accuracy_of_best": summary.get("test_accuracy"),
        "trials_with_val_accuracy_at_least_0_6": int(len(good)),
        "learning_rate_range_of_those": lr_range,
    },
    extra_config={"search": search_config},
)
print(
    f"best validation accuracy {trials['final_val_accuracy'].iloc[0]:.2f} at learning rate "
    f"{trials['learning_rate'].iloc[0]:.2g}; {len(good)} trials reached 0.6, with learning rates in {lr_range}."
)
np.log10(good["learning_rate"]).describe().round(2).to_frame("log10 learning rate of the good trials")
