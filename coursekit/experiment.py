"""What every lab shares: presets, the command line, seeding, and the output folder.

A lab is a `Lab` (name, one-line description, presets, a `run(ctx)` function).
`run_lab` seeds everything, calls `run`, and writes `OUT/<name>/results.csv`,
`config.json` (resolved settings, dataset, backend, device, seed, versions, wall
time, the lab's summary numbers) next to the figures the lab saved.
"""

import argparse
import dataclasses
import datetime
import os
import pathlib
import sys
import time
import warnings

import keras

from coursekit import data, results, runtime
from coursekit.plots import accuracy_panel, loss_panel, plot_panels
from coursekit.training import history_rows, late_mean_losses, train_variants

PRESETS = ("full", "smoke")


@dataclasses.dataclass
class LabResult:
    """What a lab's `run` returns: tidy rows, extra factor columns, figures and headline numbers."""

    rows: list
    figures: list
    summary: dict
    extra_columns: tuple = ()


@dataclasses.dataclass
class Lab:
    name: str
    description: str
    presets: dict  # preset name -> settings
    run: object  # run(ctx) -> LabResult
    uses_dataset: bool = True


@dataclasses.dataclass
class Context:
    """What a lab's `run` gets: its settings, seed, output folder and the dataset choice."""

    lab: Lab
    preset: str
    settings: dict
    seed: int
    dataset_name: str
    out_dir: pathlib.Path
    show: bool = False
    verbose: int = 1
    dataset_summary: dict | None = None

    def load_dataset(self, **kwargs):
        """The chosen dataset (train_size etc. from the lab), recorded for config.json."""
        dataset = data.load_dataset(self.dataset_name, seed=self.seed, **kwargs)
        self.dataset_summary = dataset.summary()
        return dataset

    def train(self, variants, dataset, **schedule):
        """`train_variants` on the dataset's training split with the lab's batch size, seed and verbosity.

        `schedule`: `iterations=` or `epochs=`, and optionally `eval_sets=`.
        """
        return train_variants(
            variants,
            dataset.x_train,
            dataset.y_train,
            batch_size=self.settings["batch_size"],
            seed=self.seed,
            verbose=self.verbose,
            **schedule,
        )

    def figure_path(self, name):
        return self.out_dir / name


def run_lab(lab, *, preset="full", dataset="auto", out="results", seed=0, show=False, verbose=1, overrides=None):
    """Run `lab` with a preset (plus `overrides`) and write its output folder; returns (folder, LabResult)."""
    if preset not in lab.presets:
        raise ValueError(f"Unknown preset {preset!r} for {lab.name}; valid: {', '.join(lab.presets)}")
    settings = {**lab.presets[preset], **(overrides or {})}
    keras.backend.clear_session()  # labs run one after another (`labs all`) start from a clean Keras state
    seed = runtime.seed_everything(seed)
    out_dir = pathlib.Path(out) / lab.name
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(lab, preset, settings, seed, dataset, out_dir, show=show, verbose=verbose)
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = time.perf_counter()
    result = lab.run(ctx)
    wall_time = time.perf_counter() - clock
    results.write_results(out_dir / "results.csv", result.rows, extra_columns=result.extra_columns)
    config = {
        "lab": lab.name,
        "description": lab.description,
        "preset": preset,
        "settings": settings,
        "seed": seed,
        "dataset": ctx.dataset_summary if lab.uses_dataset else None,
        **runtime.device_report(),
        "versions": runtime.package_versions(),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_time_s": round(wall_time, 3),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "implementation": os.environ.get("COURSEKIT_IMPLEMENTATION") or "coursekit (reference)",
        "figures": [pathlib.Path(f).name for f in result.figures],
        "summary": result.summary,
    }
    results.write_json(out_dir / "config.json", config)
    return out_dir, result


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(lab, argv=None):
    parser = OneLineParser(prog=f"python -m labs.{lab.name}", description=lab.description)
    parser.add_argument(
        "--preset", choices=list(lab.presets), default="full", help="full (the reference scale) or smoke (seconds)"
    )
    parser.add_argument("--dataset", default="auto", help=f"one of {', '.join(data.DATASET_NAMES)} (default: auto)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="the one seed of the run (default: 0)")
    parser.add_argument("--show", action="store_true", help="also show the figures on screen")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--implementation",
        metavar="DIR",
        help="use the components in DIR/coursekit/ (a student's package from `python -m coursekit.assignments make`)",
    )
    return parser.parse_args(argv)


def _integer_at_least(low, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, not {text!r}")
        return value

    return parse


non_negative_int = _integer_at_least(0, "non-negative")
positive_int = _integer_at_least(1, "positive")


def main(lab, argv=None):
    """Command-line entry of one lab; returns the exit status (0, or 2 with a one-line error)."""
    args = parse_args(lab, argv)
    if args.implementation and os.path.abspath(os.environ.get("COURSEKIT_IMPLEMENTATION", "")) != os.path.abspath(
        args.implementation
    ):
        print(
            f"{lab.name}: error: --implementation works from the command line only (python -m labs.{lab.name} ...)",
            file=sys.stderr,
        )
        return 2
    warnings.formatwarning = lambda message, category, *_, **__: f"{category.__name__}: {message}\n"
    try:
        out_dir, result = run_lab(
            lab,
            preset=args.preset,
            dataset=args.dataset,
            out=args.out,
            seed=args.seed,
            show=args.show,
            verbose=0 if args.quiet else 1,
        )
    except (ValueError, data.DatasetUnavailable, OSError) as error:
        print(f"{lab.name}: error: {error}", file=sys.stderr)
        return 2
    print(
        f"{lab.name}: wrote {out_dir}/results.csv, config.json, {', '.join(pathlib.Path(f).name for f in result.figures)}"
    )
    for key, value in result.summary.items():
        print(f"  {key}: {value}")
    return 0


def overfitting_comparison(ctx, dataset, variants, *, title):
    """Train `variants` side by side, recording train and test accuracy per epoch.

    The shared body of the overfitting labs: returns a `LabResult` with the
    accuracy figure (train solid, test dashed) and each variant's final train
    accuracy, test accuracy and their gap.
    """
    histories = ctx.train(
        variants,
        dataset,
        epochs=ctx.settings["epochs"],
        eval_sets={
            "train_accuracy": (dataset.x_train, dataset.y_train),
            "test_accuracy": (dataset.x_test, dataset.y_test),
        },
    )
    figure = plot_panels(
        [accuracy_panel(histories, title=title)], ctx.figure_path("accuracy.png"), show=ctx.show, panel_size=(6, 4.5)
    )
    summary = {}
    for name, history in histories.items():
        train, test = history.final("train_accuracy"), history.final("test_accuracy")
        summary[f"{name} final train/test/gap"] = [round(train, 4), round(test, 4), round(train - test, 4)]
    return LabResult(history_rows(histories, record_loss=False), [figure], summary)


def loss_comparison(ctx, dataset, variants, *, title, ylim=(0, 1)):
    """Train `variants` side by side for `iterations`, recording the loss of every update.

    The shared body of the loss-curve labs: returns a `LabResult` with the smoothed loss
    figure and each variant's mean loss over the last 10% of iterations.
    """
    histories = ctx.train(variants, dataset, iterations=ctx.settings["iterations"])
    panel = loss_panel(histories, title=title, ylim=ylim)
    figure = plot_panels([panel], ctx.figure_path("loss.png"), show=ctx.show, panel_size=(6, 4.5))
    return LabResult(history_rows(histories), [figure], late_mean_losses(histories))
