"""python -m tuning: the chapter's hyperparameter search with keras-tuner.

Examples:
    python -m tuning --preset smoke --out runs/tune       # seconds
    python -m tuning --oracle narrowing --trials 100      # the full search (resumes if re-run)

The backend is Keras' (KERAS_BACKEND; TensorFlow by default, as for the labs). Trials train
`--population K` at a time as one compiled program (default: a narrowing round, 20 of 100).
"""

import gc
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ start-up chatter

from coursekit.quiet import quiet_stderr  # noqa: E402

with quiet_stderr():
    import keras_tuner  # noqa: F401, E402  (it loads TensorFlow, whatever the backend)

from coursekit.cli import OneLineParser, non_negative_int, positive_int  # noqa: E402
from coursekit.data import DATASET_NAMES, DatasetUnavailable  # noqa: E402
from tuning.oracles import ORACLES  # noqa: E402
from tuning.search import BATCH_NORM, SearchSettings  # noqa: E402

PRESETS = {
    "full": {"trials": 100, "epochs": 50},
    "smoke": {"trials": 6, "epochs": 3, "rounds": 2},
}


def _names(text):
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv=None):
    parser = OneLineParser(
        prog="python -m tuning", description="Hyperparameter search on the validation split (keras-tuner)."
    )
    parser.add_argument("--preset", choices=list(PRESETS), default="full")
    parser.add_argument("--dataset", default="auto", help=f"one of {', '.join(DATASET_NAMES)}")
    parser.add_argument("--out", default="results/tuning", help="output folder (report + keras_tuner/ state)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--trials", type=positive_int, help="number of trials (preset: 100 full, 6 smoke)")
    parser.add_argument("--epochs", type=positive_int, help="epochs per trial (preset: 50 full, 3 smoke)")
    parser.add_argument("--oracle", choices=ORACLES, default="narrowing")
    parser.add_argument("--rounds", type=positive_int, help="narrowing: rounds (default ceil(trials/20))")
    parser.add_argument("--keep", type=positive_int, help="narrowing: best trials that set the next range")
    parser.add_argument("--margin", type=float, default=0.1, help="narrowing: widening, fraction of the round's range")
    parser.add_argument("--train-size", type=positive_int, default=500)
    parser.add_argument("--batch-size", type=positive_int, default=100)
    parser.add_argument(
        "--optimizers", type=_names, default=("SGD",), help="comma list, e.g. SGD,Momentum,Adam (more than one: tuned)"
    )
    parser.add_argument("--initializers", type=_names, default=("he",), help="comma list, e.g. he,xavier")
    parser.add_argument("--batch-norm", choices=BATCH_NORM, default="off")
    parser.add_argument("--max-dropout", type=float, default=0.0, help="tune a dropout rate in [0, this)")
    parser.add_argument(
        "--population", type=positive_int, help="K, trials trained at once (default: a narrowing round, 20 of 100)"
    )
    parser.add_argument(
        "--workers", type=positive_int, help="chief of a distributed search: wait until this many workers have asked"
    )
    parser.add_argument("--mixed-precision", action="store_true", help="mixed precision inside every trial")
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    parser.add_argument("--show", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def settings_from_args(args):
    preset = PRESETS[args.preset]
    return SearchSettings(
        dataset=args.dataset,
        train_size=args.train_size,
        batch_size=args.batch_size,
        trials=args.trials or preset["trials"],
        epochs=args.epochs or preset["epochs"],
        oracle=args.oracle,
        rounds=args.rounds or preset.get("rounds"),
        keep=args.keep,
        margin=args.margin,
        optimizers=args.optimizers,
        initializers=args.initializers,
        batch_norm=args.batch_norm,
        max_dropout=args.max_dropout,
        mixed_precision=args.mixed_precision,
        population=args.population,
        workers=args.workers,
        seed=args.seed,
    )


def main(argv=None):
    args = parse_args(argv)
    warnings.formatwarning = lambda message, category, *_, **__: f"{category.__name__}: {message}\n"
    from tuning.run import run_search

    gc.freeze()  # what the imports made lives as long as the process: collections skip it (1 s per 100 trials)
    try:
        settings = settings_from_args(args).validate()
        summary, _ = run_search(
            settings, args.out, overwrite=args.overwrite, verbose=0 if args.quiet else 1, show=args.show
        )
    except (ValueError, DatasetUnavailable, OSError) as error:
        print(f"tuning: error: {error}", file=sys.stderr)
        return 2
    if summary is None:
        print("tuning: worker finished; the chief writes the report")
        return 0
    print(
        f"tuning: wrote {args.out}/trials.csv, results.csv, best_trials.png, narrowing.png, best_hyperparameters.json, "
        "config.json" + "".join(f"\ntuning: {warning}" for warning in summary.get("edge warnings", []))
    )
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
