"""The search's report: trials.csv, per-epoch curves, the best trials' grid, the best model's test accuracy."""

import math
import os
import pathlib

import numpy as np
from keras_tuner.engine.trial import TrialStatus

from coursekit import results
from coursekit.plots import Line, plot_panels
from tuning import internals

TRIAL_COLUMNS = (
    "trial_id",
    "round",
    "status",
    "final_val_accuracy",
    "best_val_accuracy",
    "final_train_accuracy",
    "epochs",
    "duration_s",
    "rss_mb",
    "compute_bits",
    "population",
)


def _history(trial, name):
    """`[(epoch, value)]` of a metric, epochs counted from 1 (the oracle's steps are `fit`'s epochs from 0)."""
    if not trial.metrics.exists(name):
        return []
    return [(obs.step + 1, obs.mean()) for obs in trial.metrics.get_history(name)]


def _last(trial, name):
    history = _history(trial, name)
    return history[-1][1] if history else float("nan")


def _last_count(trial, name):
    """`_last` for a count (keras-tuner stores every metric as a float): an int, NaN if never recorded."""
    value = _last(trial, name)
    return int(value) if math.isfinite(value) else value


def trial_table(oracle):
    """One dict per trial, in trial order, with every hyperparameter as a column."""
    rounds = getattr(oracle, "trial_rounds", {})
    names = [hp.name for hp in oracle.get_space().space]
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        val = _history(trial, "val_accuracy")
        row = {
            "trial_id": trial_id,
            "round": rounds.get(trial_id, 0),
            "status": trial.status,
            "final_val_accuracy": val[-1][1] if val else float("nan"),
            "best_val_accuracy": max(v for _, v in val) if val else float("nan"),
            "final_train_accuracy": _last(trial, "train_accuracy"),
            "epochs": len(val),
            "duration_s": _last(trial, "tuner/seconds"),
            "rss_mb": _last(trial, "tuner/rss_mb"),
            "compute_bits": _last_count(trial, "tuner/compute_bits"),
            "population": _last_count(trial, "tuner/population"),
        }
        row.update({name: trial.hyperparameters.values.get(name) for name in names})
        rows.append(row)
    return rows, names


def curve_rows(oracle):
    """Tidy per-epoch curves of every trial: variant = trial id."""
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        for metric in ("val_accuracy", "train_accuracy"):
            rows += [
                {"variant": trial_id, "step": step, "metric": metric, "value": value}
                for step, value in _history(trial, metric)
            ]
    return rows


def best_trials_figure(oracle, table, path, *, top=20, ncols=5, show=False):
    """The reference's grid: the `top` best trials, validation solid, train dashed."""
    completed = [
        row for row in table if row["status"] == TrialStatus.COMPLETED and not math.isnan(row["final_val_accuracy"])
    ]
    ranked = sorted(completed, key=lambda row: row["final_val_accuracy"], reverse=True)[:top]
    panels = []
    for rank, row in enumerate(ranked, start=1):
        trial = oracle.trials[row["trial_id"]]
        lines = []
        for metric, style in (("val_accuracy", "-"), ("train_accuracy", "--")):
            history = _history(trial, metric)
            if history:
                steps, values = zip(*history)
                lines.append(Line(steps, values, style=style, color="C0"))
        title = f"Best-{rank} (val acc:{row['final_val_accuracy']:.3f})"
        subtitle = f"lr:{row.get('learning_rate', float('nan')):.2g}, wd:{row.get('weight_decay', float('nan')):.2g}"
        panels.append(
            {"title": f"{title}\n{subtitle}", "lines": lines, "ylim": (0, 1.0), "hide_ticks": rank % ncols != 1}
        )
    if not panels:
        return None
    return plot_panels(
        panels,
        path,
        ncols=ncols,
        show=show,
        panel_size=(2.8, 2.3),
        legend_panel=None,
        suptitle=f"The {len(panels)} best of {len(completed)} trials: validation (solid) and training (dashed) accuracy",
        xlabel="epoch",
    )


def write_report(tuner, dataset, out_dir, *, show=False):
    """Write trials.csv, results.csv (curves), best_trials.png and best_hyperparameters.json."""
    out_dir = pathlib.Path(out_dir)
    oracle = tuner.oracle
    table, hp_names = trial_table(oracle)
    columns = TRIAL_COLUMNS[:2] + tuple(hp_names) + TRIAL_COLUMNS[2:]
    results.write_csv(out_dir / "trials.csv", table, columns)
    results.write_results(out_dir / "results.csv", curve_rows(oracle))
    figure = best_trials_figure(oracle, table, out_dir / "best_trials.png", show=show)

    best = evaluate_best(tuner, dataset)
    completed = [row for row in table if row["status"] == TrialStatus.COMPLETED]
    memory = [row["rss_mb"] for row in completed if not math.isnan(row["rss_mb"])]
    summary = {
        "trials": len(table),
        "completed": len(completed),
        **best,
        "val_accuracy >= 0.7": sum(row["final_val_accuracy"] >= 0.7 for row in completed),
        "rss_mb first/last trial": [round(float(memory[0]), 1), round(float(memory[-1]), 1)] if memory else None,
        "rss_mb growth per trial (fit over the later half)": _growth(memory[len(memory) // 2 :]),
    }
    if hasattr(oracle, "round_bounds"):
        summary["round bounds"] = [
            {name: [float(f"{low:.3g}"), float(f"{high:.3g}")] for name, (low, high) in oracle.value_bounds(r).items()}
            for r in range(len(oracle.round_bounds))
        ]
    results.write_json(out_dir / "best_hyperparameters.json", best)
    return table, summary, [figure] if figure else []


def _growth(memory):
    """Least-squares slope of resident memory over trials, MiB per trial (the later half: past the warm-up)."""
    if len(memory) < 3:
        return None
    return round(float(np.polyfit(np.arange(len(memory)), memory, 1)[0]), 3)


def evaluate_best(tuner, dataset):
    """The best trial's hyperparameters and its model's accuracy on the test set (used once, here)."""
    best_trials = tuner.oracle.get_best_trials(1)
    if not best_trials or best_trials[0].status != TrialStatus.COMPLETED:
        return {"best_trial": None}
    trial = best_trials[0]
    saved = os.path.exists(internals.checkpoint_path(tuner, trial.trial_id))
    model = tuner.load_model(trial)
    predicted = np.argmax(model.predict(dataset.x_test, batch_size=1000, verbose=0), axis=1)
    return {
        "best_trial": trial.trial_id,
        "hyperparameters": {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
        "val_accuracy": trial.score,
        "test_accuracy": float(np.mean(predicted == dataset.y_test)),
        "test_examples": len(dataset.y_test),
        "model": "the trial's saved weights" if saved else "retrained with the trial's seed",
    }
