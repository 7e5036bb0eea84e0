"""Hyperparameter search on a validation split: learning rate and weight decay.

As the reference: the first 500 training images, 20% held out for validation
(never the test set), a 784-[100]x6-10 net trained with SGD (batches of 100,
50 epochs) for 100 random draws of learning rate 10^U(-6,-2) and weight decay
10^U(-8,-4), through the project's keras-tuner search. The 20 best trials
(validation solid, training dashed) show where good values lie: learning rates
near 1e-2. `python -m tuning --oracle narrowing` then narrows the ranges round
by round, as the chapter advises.
"""

import sys

from coursekit.experiment import Lab, LabResult, main
from tuning import SearchSettings, run_search
from tuning.report import curve_rows, trial_table

PRESETS = {
    "full": {"trials": 100, "epochs": 50, "train_size": 500, "validation_fraction": 0.2, "oracle": "random"},
    "smoke": {"trials": 12, "epochs": 15, "train_size": 500, "validation_fraction": 0.2, "oracle": "random"},
}


def run(ctx):
    settings = SearchSettings(dataset=ctx.dataset_name, seed=ctx.seed, **ctx.settings)

    # ## The search (fresh each lab run; `python -m tuning` resumes instead).
    summary, tuner = run_search(settings, ctx.out_dir, overwrite=True, verbose=ctx.verbose, show=ctx.show)
    ctx.dataset_summary = tuner.dataset.summary()

    # ## What the trials say: where do the good learning rates lie?
    table, _ = trial_table(tuner.oracle)
    good = [row["learning_rate"] for row in table if row["final_val_accuracy"] >= 0.6]
    summary["learning_rate range of trials with val_accuracy >= 0.6"] = (
        [float(f"{min(good):.3g}"), float(f"{max(good):.3g}")] if good else None
    )
    return LabResult(curve_rows(tuner.oracle), [ctx.figure_path("best_trials.png")], summary)


LAB = Lab(
    "hyperparameter_optimization",
    "random search of learning rate and weight decay on a validation split (keras-tuner)",
    PRESETS,
    run,
)

if __name__ == "__main__":
    sys.exit(main(LAB))
