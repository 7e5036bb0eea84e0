"""What every lab script shares: settings, options, seeding, figures shown inline, and the output folder.

A lab is a script in `labs/` written as a lesson (jupytext percent format: markdown cells
between short code cells), so the same file is a command and, through jupytext, a notebook:

    lab = start("optimizer_compare_mnist", PRESETS)    # near the top: options, seed, output folder
    dataset = lab.load_dataset()
    histories = lab.train(variants, dataset, iterations=lab.settings.iterations)
    lab.figure("loss.png", [panel])                   # saved, and shown inline in a notebook
    lab.finish(rows, summary)                         # at the end: results.csv and config.json

`start` takes its options from, in this order:
- the caller: `run(NAME, preset=..., ...)` and `python -m labs all`;
- a notebook's environment: COURSEKIT_PRESET (`smoke` or `full`, default `full`),
  COURSEKIT_DATASET (default `auto`), COURSEKIT_OUT (default `results`), COURSEKIT_SEED (default 0);
- the command line: `python -m labs.NAME [--preset] [--dataset] [--out] [--seed] [--show] [--quiet]
  [--implementation DIR]`. There a bad value ends the command with one line on stderr and exit
  status 2, and `--implementation DIR` restarts the command with the components of DIR.

Every run writes `OUT/NAME/results.csv` (tidy: variant, step, metric, value, and factor
columns), `config.json` (settings, seed, dataset, backend, device, versions, wall time, and the
lab's summary as numbers under snake_case keys) and its figures.
"""

import dataclasses
import datetime
import os
import pathlib
import re
import runpy
import sys
import time
import warnings

from coursekit import data, results, runtime
from coursekit.cli import OneLineParser, non_negative_int
from coursekit.plots import plot_panels

PRESET_NAMES = ("full", "smoke")
ERRORS = (ValueError, data.DatasetUnavailable, OSError, NotImplementedError)
_NOT_IMPLEMENTED = re.compile(r"exercise \w+ is not implemented yet[^\n\x1b\"]*")


def error_line(error):
    """One line that says what went wrong (an unwritten exercise's own message, even when Keras wraps it)."""
    if isinstance(error, NotImplementedError):
        found = _NOT_IMPLEMENTED.search(str(error))
        if found:
            return found.group(0).strip()
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of a lab's settings: a frozen dataclass; `replace` refuses a setting it does not have."""

    def replace(self, **changes):
        names = [field.name for field in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)} for {type(self).__name__}; valid: {', '.join(names)}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)


def presets(full, **smoke):
    """{"full": full, "smoke": full with the `smoke` changes}: the smoke preset is derived from the full one."""
    return {"full": full, "smoke": full.replace(**smoke)}


@dataclasses.dataclass
class Options:
    """How a lab is run: preset, dataset, output folder, seed, display and verbosity."""

    preset: str = "full"
    dataset: str = "auto"
    out: str = "results"
    seed: int = 0
    show: bool = False
    verbose: int = 1
    overrides: dict = dataclasses.field(default_factory=dict)


_PENDING = []  # options handed to the next `start` by `run`
_LAST = []  # the lab `start` made last (returned by `run`)


def in_notebook():
    """True inside a Jupyter kernel (Colab included)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and "ipykernel" in sys.modules and hasattr(shell, "kernel")


def _notebook_options():
    seed = os.environ.get("COURSEKIT_SEED", "0")
    if not seed.isdigit():
        raise ValueError(f"COURSEKIT_SEED must be a non-negative integer; received {seed!r}")
    return Options(
        preset=os.environ.get("COURSEKIT_PRESET", "full"),
        dataset=os.environ.get("COURSEKIT_DATASET", "auto"),
        out=os.environ.get("COURSEKIT_OUT", "results"),
        seed=int(seed),
        show=True,
    )


def argument_parser(prog, description=None):
    """The options every lab takes on the command line."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument(
        "--preset", choices=PRESET_NAMES, default="full", help="full (the reference scale) or smoke (seconds)"
    )
    parser.add_argument("--dataset", default="auto", help=f"one of {', '.join(data.DATASET_NAMES)} (default: auto)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="the one seed of the run (default: 0)")
    parser.add_argument("--show", action="store_true", help="also show the figures on screen")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--implementation",
        metavar="DIR",
        help="use the components in DIR/coursekit/ (a student's folder, see `python -m coursekit.assignments`)",
    )
    return parser


def use_implementation(folder):
    """Restart this command with the components of `folder` (they must be loaded before anything imports them)."""
    folder = os.path.abspath(folder)
    if os.environ.get("COURSEKIT_IMPLEMENTATION") == folder:
        return
    if not os.path.isdir(os.path.join(folder, "coursekit")):
        raise ValueError(f"--implementation: no coursekit/ folder in {folder}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "COURSEKIT_IMPLEMENTATION": folder})


def one_line_errors(prog):
    """On the command line: an expected error (bad dataset, missing file, exercise not written) is one stderr line, exit 2."""
    previous = sys.excepthook

    def hook(kind, error, trace):
        if not issubclass(kind, ERRORS):
            return previous(kind, error, trace)
        print(f"{prog}: error: {error_line(error)}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)

    sys.excepthook = hook
    warnings.formatwarning = lambda message, category, *_, **__: f"{category.__name__}: {message}\n"


def _command_line_options(name):
    args = argument_parser(f"python -m labs.{name}").parse_args(sys.argv[1:])
    if args.implementation:
        use_implementation(args.implementation)
    one_line_errors(name)
    return Options(args.preset, args.dataset, args.out, args.seed, args.show, 0 if args.quiet else 1)


@dataclasses.dataclass
class Lab:
    """One run of a lab: its settings and options, and what it has written."""

    name: str
    preset: str
    settings: Settings
    seed: int
    dataset_name: str
    out_dir: pathlib.Path
    show: bool
    inline: bool
    verbose: int
    started_at: str
    clock: float
    figures: list = dataclasses.field(default_factory=list)
    dataset_summary: dict | None = None
    summary: dict | None = None

    def load_dataset(self, **kwargs):
        """The chosen dataset (`train_size=` etc.), recorded for config.json."""
        dataset = data.load_dataset(self.dataset_name, seed=self.seed, **kwargs)
        self.dataset_summary = dataset.summary()
        return dataset

    def train(self, variants, dataset, **schedule):
        """`coursekit.training.train_variants` on the training split, with the lab's batch size, seed and verbosity.

        `schedule`: `iterations=` or `epochs=`, and optionally `eval_sets=`.
        """
        from coursekit.training import train_variants

        return train_variants(
            variants,
            dataset.x_train,
            dataset.y_train,
            batch_size=self.settings.batch_size,
            seed=self.seed,
            verbose=self.verbose,
            **schedule,
        )

    def figure(self, filename, panels, **layout):
        """Draw `panels` (see `coursekit.plots`), save them to OUT/NAME/filename, show them inline in a notebook.

        `layout`: the keyword arguments of `coursekit.plots.plot_panels` (ncols, suptitle, xlabel, ...).
        """
        path = plot_panels(panels, self.out_dir / filename, show=self.show and not self.inline, **layout)
        if path not in self.figures:
            self.figures.append(path)
        if self.inline:
            from IPython.display import Image, display

            display(Image(filename=str(path)))

    def image(self, path):
        """Show a figure another tool saved (inline in a notebook) and list it with the lab's figures."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise OSError(f"no figure at {path}")
        if path not in self.figures:
            self.figures.append(path)
        if self.inline:
            from IPython.display import Image, display

            display(Image(filename=str(path)))
        elif self.show:
            import matplotlib.image
            import matplotlib.pyplot as plt

            plt.imshow(matplotlib.image.imread(path))
            plt.axis("off")
            plt.show()

    def finish(self, rows, summary, *, extra_columns=(), extra_config=None):
        """Write results.csv and config.json; on the command line, print what was written and the summary."""
        self.summary = summary
        results.write_results(self.out_dir / "results.csv", rows, extra_columns=extra_columns)
        config = {
            "lab": self.name,
            "preset": self.preset,
            "settings": self.settings.to_dict(),
            "seed": self.seed,
            "dataset": self.dataset_summary,
            **runtime.device_report(),
            "versions": runtime.package_versions(),
            "started_at": self.started_at,
            "wall_time_s": round(time.perf_counter() - self.clock, 3),
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]) if not self.inline else "notebook",
            "implementation": os.environ.get("COURSEKIT_IMPLEMENTATION") or "coursekit (reference)",
            "figures": [str(pathlib.Path(f).relative_to(self.out_dir)) for f in self.figures],
            "summary": summary,
            **(extra_config or {}),
        }
        results.write_json(self.out_dir / "config.json", config)
        files = ", ".join(["results.csv", "config.json", *config["figures"]])
        print(f"{self.name}: wrote {files} to {self.out_dir}")
        if not self.inline:
            for key, value in summary.items():
                print(f"  {key}: {value}")
        return config


def start(name, presets):
    """Begin a run of lab `name` with one of `presets` (see the module docstring for where options come from)."""
    if _PENDING:
        options = _PENDING.pop()
    elif in_notebook():
        options = _notebook_options()
    else:
        options = _command_line_options(name)
    if options.preset not in presets:
        raise ValueError(f"Unknown preset {options.preset!r} for {name}; valid: {', '.join(presets)}")
    settings = presets[options.preset].replace(**options.overrides)
    import keras

    keras.backend.clear_session()  # labs run one after another (`labs all`) start from a clean Keras state
    seed = runtime.seed_everything(options.seed)
    out_dir = pathlib.Path(options.out) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    inline = in_notebook()
    lab = Lab(
        name=name,
        preset=options.preset,
        settings=settings,
        seed=seed,
        dataset_name=options.dataset,
        out_dir=out_dir,
        show=options.show,
        inline=inline and options.show,
        verbose=options.verbose,
        started_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        clock=time.perf_counter(),
    )
    _LAST[:] = [lab]
    return lab


def run(name, *, preset="full", dataset="auto", out="results", seed=0, show=False, verbose=1, overrides=None):
    """Run the lab script `labs/NAME.py` with these options; returns its `Lab` (after `finish`)."""
    _PENDING[:] = [Options(preset, dataset, out, seed, show, verbose, dict(overrides or {}))]
    _LAST.clear()
    try:
        from labs import FOLDER, NAMES

        if name not in NAMES:
            raise ValueError(f"unknown lab {name!r}; valid: {', '.join(NAMES)}")
        runpy.run_path(str(FOLDER / f"{name}.py"), run_name="__main__")
    finally:
        _PENDING.clear()
    return _LAST[0]
