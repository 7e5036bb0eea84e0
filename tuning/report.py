"""The search's report: trials.csv, per-epoch curves, the best trials' grid, the narrowing drawn round by round,
warnings when the best trials lie at the edge of a declared range, the best model's test accuracy."""

import math
import os
import pathlib

import numpy as np
from keras_tuner.engine.hyperparameters import Float, Int
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


def declared_ranges(oracle):
    """The search space's numeric ranges: `{name: (low, high, sampling)}` (sampling "log" or "linear")."""
    return {
        hp.name: (hp.min_value, hp.max_value, hp.sampling or "linear")
        for hp in oracle.get_space().space
        if isinstance(hp, (Float, Int))
    }


def round_boxes(oracle):
    """Each round's ranges, `[{name: (low, high)}]`: the narrowing oracle's rounds, else one round, the declared ranges."""
    if hasattr(oracle, "round_bounds"):
        return [oracle.value_bounds(r) for r in range(len(oracle.round_bounds))]
    return [{name: (low, high) for name, (low, high, _) in declared_ranges(oracle).items()}]


def best_completed(table, top):
    """The `top` completed trials of highest final validation accuracy, best first."""
    completed = [
        row for row in table if row["status"] == TrialStatus.COMPLETED and not math.isnan(row["final_val_accuracy"])
    ]
    return sorted(completed, key=lambda row: row["final_val_accuracy"], reverse=True)[:top]


def edges(oracle, table, *, band=0.1):
    """The declared ranges whose best trials lie at an edge: `[{name, low, high, side, best, near, of}]`.

    For each numeric hyperparameter, a trial's position in its declared range is measured in
    the range's own sampling scale (log for log), 0 at the low end and 1 at the high end. The
    best trials are the top max(3, 10%) completed trials; a range is at its edge when the
    best trial lies in its outer `band` (10%) and so do at least half of the best trials
    (`near` of the `of` best). The advice is then to widen the range, not to narrow it.
    """
    completed = sum(row["status"] == TrialStatus.COMPLETED for row in table)
    best = best_completed(table, max(3, math.ceil(0.1 * completed)))
    by_name = {hp.name: hp for hp in oracle.get_space().space}
    found = []
    for name, (low, high, _) in declared_ranges(oracle).items():
        positions = [by_name[name].value_to_prob(row[name]) for row in best if row.get(name) is not None]
        for side, near in (("upper", lambda p: p >= 1 - band), ("lower", lambda p: p <= band)):
            count = sum(near(p) for p in positions)
            if positions and near(positions[0]) and count >= len(positions) / 2:
                found.append(
                    {"name": name, "low": low, "high": high, "side": side, "best": best[0][name], "near": count}
                    | {"of": len(positions), "band": band}
                )
    return found


def edge_warnings(oracle, table):
    """`edges` as sentences: "best trials at the edge of the learning_rate range [1e-06, 0.01]: widen it (...)"."""
    return [
        f"best trials at the edge of the {e['name']} range [{e['low']:g}, {e['high']:g}]: widen it (the best trial, "
        f"{e['name']} {e['best']:.3g}, and {e['near']} of the {e['of']} best lie in its {e['side']} {e['band']:.0%})"
        for e in edges(oracle, table)
    ]


def narrowing_figure(oracle, table, path, *, x="learning_rate", y="weight_decay", show=False):
    """One panel per round: its trials at (x, y), log axes, coloured by final validation accuracy, and its box.

    The box is the round's ranges (the narrowing oracle's `value_bounds`; for other oracles
    there is one round, the declared ranges); earlier rounds' trials are the grey dots.
    Returns the path, or None when the space lacks `x` or `y`.
    """
    ranges = declared_ranges(oracle)
    if x not in ranges or y not in ranges:
        return None
    boxes = round_boxes(oracle)
    rows = [row for row in table if row.get(x) is not None and row.get(y) is not None]
    limits = {}
    for name in (x, y):
        low, high, sampling = ranges[name]
        factor = (high / low) ** 0.04 if sampling == "log" else None
        limits[name] = (
            (low / factor, high * factor) if factor else (low - 0.04 * (high - low), high + 0.04 * (high - low))
        )
    panels = []
    for index, box in enumerate(boxes):
        ours = [row for row in rows if row["round"] == index]
        earlier = [row for row in rows if row["round"] < index]
        accuracy = [row["final_val_accuracy"] for row in ours]
        best = max((a for a in accuracy if not math.isnan(a)), default=float("nan"))
        panels.append(
            {
                "title": f"round {index + 1}: {len(ours)} trials, best {best:.2f}"
                if len(boxes) > 1
                else f"{len(ours)} trials, best {best:.2f}",
                "lines": [Line([r[x] for r in earlier], [r[y] for r in earlier], style=".", color="lightgray")]
                if earlier
                else [],
                "scatter": ([r[x] for r in ours], [r[y] for r in ours], np.nan_to_num(accuracy, nan=0.0)),
                "colorbar": "final validation accuracy" if index == len(boxes) - 1 else None,
                "boxes": [(box[x], box[y], None)],
                "xscale": "log" if ranges[x][2] == "log" else None,
                "yscale": "log" if ranges[y][2] == "log" else None,
                "xlim": limits[x],
                "ylim": limits[y],
                "xlabel": x.replace("_", " "),
                "ylabel": y.replace("_", " ") if index == 0 else None,
            }
        )
    at_edge = [e["name"] for e in edges(oracle, table)]
    if at_edge:
        panels[-1]["title"] += f"\nat the edge: {', '.join(at_edge)}; widen it"
        panels[-1]["title_color"] = "red"
    return plot_panels(
        panels,
        path,
        ncols=min(len(panels), 5),
        panel_size=(3.6, 3.3) if len(panels) > 1 else (6.5, 4.8),
        legend_panel=None,
        show=show,
        suptitle="Trials coloured by final validation accuracy; dashed: each round's ranges"
        if len(panels) > 1
        else "Trials coloured by final validation accuracy\ndashed: the declared ranges",
    )


def write_report(tuner, dataset, out_dir, *, show=False):
    """Write trials.csv, results.csv (curves), best_trials.png, narrowing.png and best_hyperparameters.json."""
    out_dir = pathlib.Path(out_dir)
    oracle = tuner.oracle
    table, hp_names = trial_table(oracle)
    columns = TRIAL_COLUMNS[:2] + tuple(hp_names) + TRIAL_COLUMNS[2:]
    results.write_csv(out_dir / "trials.csv", table, columns)
    results.write_results(out_dir / "results.csv", curve_rows(oracle))
    figure = best_trials_figure(oracle, table, out_dir / "best_trials.png", show=show)
    rounds_figure = narrowing_figure(oracle, table, out_dir / "narrowing.png", show=show)

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
        "edge warnings": edge_warnings(oracle, table),
    }
    if hasattr(oracle, "round_bounds"):
        summary["round bounds"] = [
            {name: [float(f"{low:.3g}"), float(f"{high:.3g}")] for name, (low, high) in oracle.value_bounds(r).items()}
            for r in range(len(oracle.round_bounds))
        ]
    results.write_json(out_dir / "best_hyperparameters.json", best)
    return table, summary, [f for f in (figure, rounds_figure) if f]


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
