"""Run or resume a search and write its report: the whole job behind `python -m tuning`."""

import dataclasses
import datetime
import pathlib
import time

from coursekit import data, results, runtime
from tuning import internals
from tuning.report import write_report
from tuning.search import make_tuner

PROJECT = "search"
EVALUATION_BATCH = 1000  # rows per batch of the per-epoch accuracies (the book evaluates each split whole)


def run_search(settings, out_dir, *, overwrite=False, verbose=1, show=False):
    """Run (or resume) the search in `out_dir/keras_tuner` and write the report to `out_dir`.

    Re-running the same command resumes: finished trials are kept, an interrupted
    one runs again. With keras-tuner's KERASTUNER_* variables set, this process is
    the chief (serves the oracle, writes the report once the workers are done) or
    a worker (runs trials). Returns (summary, tuner); the summary is None on a worker.
    """
    settings.validate()
    if settings.workers and not internals.has_chief_oracle():
        raise ValueError(
            f"workers={settings.workers} applies to a distributed search (KERASTUNER_ORACLE_IP and "
            "KERASTUNER_TUNER_ID set); a search on one machine has no workers to wait for"
        )
    out_dir = pathlib.Path(out_dir)
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = time.perf_counter()
    runtime.seed_everything(settings.seed)
    dataset = data.load_dataset(
        settings.dataset,
        train_size=settings.train_size,
        validation_fraction=settings.validation_fraction,
        seed=settings.seed,
    )
    tuner = make_tuner(
        settings, dataset, directory=str(out_dir / "keras_tuner"), project_name=PROJECT, overwrite=overwrite
    )
    tuner.log_trials = verbose > 0 and internals.has_chief_oracle()
    tuner.dataset = dataset  # what the search ran on (the lesson shows it)
    tuner.search(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        extra_validation={"train_": (dataset.x_train, dataset.y_train)},  # the book's training accuracy
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        validation_batch_size=EVALUATION_BATCH,
        verbose=verbose,
    )
    if internals.has_chief_oracle() and not internals.is_chief_oracle():
        return None, tuner  # a worker: the chief writes the report
    table, summary, figures = write_report(tuner, dataset, out_dir, show=show)
    config = {
        "job": "tuning",
        "settings": dataclasses.asdict(settings),
        "seed": settings.seed,
        "dataset": dataset.summary(),
        **runtime.device_report(),
        "versions": runtime.package_versions(),
        "distributed": internals.has_chief_oracle(),
        "started_at": started.isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - clock, 3),
        "figures": [f.name for f in figures],
        "summary": summary,
    }
    results.write_json(out_dir / "config.json", config)
    return summary, tuner
