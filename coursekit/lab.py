"""What every lab script shares: settings, options, seeding, figures shown inline, and the output folder.

A lab is a script in `labs/` written as a lesson (jupytext percent format: markdown cells
between short code cells), so the same file is a command and, through jupytext, a notebook:

    lab = start("optimizer_compare_mnist", PRESETS)    # near the top: options, seed, output folder
    dataset = lab.load_dataset()
    variants = lab.variants(make_variants)            # make_variants(seed), once per seed of the run
    histories = lab.train(variants, dataset, iterations=lab.settings.iterations)
    lab.figure("loss.png", [panel])                   # saved, and shown inline in a notebook
    lab.interactive("paths.png", explorer)            # a figure with sliders (coursekit.interactive)
    lab.finish(rows, summary)                         # at the end: results.csv and config.json

`start` takes its options from, in this order:
- the caller: `run(NAME, preset=..., ...)` and `python -m labs all`;
- a notebook's environment: COURSEKIT_PRESET (`smoke` or `full`, default `full`),
  COURSEKIT_DATASET (default `auto`), COURSEKIT_OUT (default `results`), COURSEKIT_SEED (default 0),
  COURSEKIT_SEEDS (default: the lab's `notebook_seeds`, see `start`);
- the command line: `python -m labs.NAME [--preset] [--dataset] [--out] [--seed] [--seeds N] [--show]
  [--quiet] [--implementation DIR]`. There a bad value ends the command with one line on stderr and
  exit status 2, and `--implementation DIR` restarts the command with the components of DIR.

Seeds: a run has one seed (`--seed S`) and, with `--seeds N`, runs its variants over the N seeds
S, S+1, ..., S+N-1 (`lab.seeds`): `lab.variants(make)` builds each variant once per seed (its
model, initial weights and minibatch order from that seed). With N = 1 a lab computes exactly
what it computes with one seed. The lab then states each claim over the seeds ("in 5 of 5
seeds; 13 to 15", `coursekit.results.Claim`) and draws the spread as bands.

Every run writes `OUT/NAME/results.csv` (tidy: variant, step, metric, value, and factor
columns, `seed` among them), `config.json` (settings, seed and seeds, dataset, backend, device,
versions, wall time, and the lab's summary as numbers under snake_case keys) and its figures.
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
from coursekit.cli import OneLineParser, non_negative_int, positive_int
from coursekit.plots import plot_panels
from coursekit.training import ENGINES

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
    """How a lab is run: preset, dataset, output folder, seed, display, verbosity, seeds (None: the lab's default)
    and the training engine (`coursekit.training.train_variants`' `engine`)."""

    preset: str = "full"
    dataset: str = "auto"
    out: str = "results"
    seed: int = 0
    show: bool = False
    verbose: int = 1
    overrides: dict = dataclasses.field(default_factory=dict)
    seeds: int | None = 1
    engine: str = "auto"


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
    seeds = os.environ.get("COURSEKIT_SEEDS")
    if seeds is not None and not (seeds.isdigit() and int(seeds) >= 1):
        raise ValueError(f"COURSEKIT_SEEDS must be a positive integer; received {seeds!r}")
    return Options(
        preset=os.environ.get("COURSEKIT_PRESET", "full"),
        dataset=os.environ.get("COURSEKIT_DATASET", "auto"),
        out=os.environ.get("COURSEKIT_OUT", "results"),
        seed=int(seed),
        show=True,
        seeds=int(seeds) if seeds else None,
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
    parser.add_argument(
        "--seeds", type=positive_int, default=1, help="run the variants over N seeds: SEED, SEED+1, ... (default: 1)"
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="how the variants train: auto (populations), population, fused (one after the other), per_variant",
    )
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
    verbose = 0 if args.quiet else 1
    return Options(
        args.preset, args.dataset, args.out, args.seed, args.show, verbose, seeds=args.seeds, engine=args.engine
    )


@dataclasses.dataclass
class Lab:
    """One run of a lab: its settings and options, and what it has written."""

    name: str
    preset: str
    settings: Settings
    seed: int
    seeds: list
    dataset_name: str
    out_dir: pathlib.Path
    show: bool
    inline: bool
    verbose: int
    engine: str
    started_at: str
    clock: float
    figures: list = dataclasses.field(default_factory=list)
    dataset_summary: dict | None = None
    summary: dict | None = None
    base_names: dict = dataclasses.field(default_factory=dict)  # variant name -> (seed, name given by `make`)

    def variants(self, make):
        """`make(seed)`'s variants (`coursekit.training.Variant`s), for each of the run's seeds in turn.

        `make(seed)` builds the lab's variants with that seed (their models' initial weights);
        each variant then gets `Variant.seed = seed` (its minibatch order), a `seed` factor (the
        `seed` column of results.csv) and its name as its label; with several seeds its name
        becomes unique as `NAME seed=S`. With one seed, the variants are exactly `make(lab.seed)`'s.
        """
        made = []
        for seed in self.seeds:
            for variant in make(seed):
                base = variant.name
                variant.label = variant.label or base
                variant.factors = {**variant.factors, "seed": seed}
                variant.seed = seed
                if len(self.seeds) > 1:
                    variant.name = f"{base} seed={seed}"
                self.base_names[variant.name] = (seed, base)
                made.append(variant)
        return made

    def by_seed(self, histories):
        """`{seed: {name given by make: History}}` for the histories of `lab.variants(make)`'s variants."""
        grouped = {seed: {} for seed in self.seeds}
        for name, history in histories.items():
            seed, base = self.base_names[name]
            grouped[seed][base] = history
        return grouped

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
            engine=self.engine,
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

    def interactive(self, filename, explorer):
        """Save `explorer`'s figure at its initial settings to OUT/NAME/filename, and show it with its controls.

        `explorer` is a `coursekit.interactive.Explorer`. In a notebook the output is the live
        figure with its sliders, carrying the saved PNG as its static fallback (what GitHub,
        nbviewer or a notebook without a widget front end shows); elsewhere the PNG is only
        written (and shown with `--show`).
        """
        from coursekit.results import write_atomic

        path = write_atomic(self.out_dir / filename, explorer.fallback_png())
        if path not in self.figures:
            self.figures.append(path)
        if self.inline:
            from IPython.display import display

            display(explorer)
        elif self.show:
            self.image(path)

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
        rows = list(rows)
        if "seed" not in extra_columns and any("seed" in row for row in rows):
            extra_columns = (*extra_columns, "seed")  # the seed of each row (lab.variants)
        results.write_results(self.out_dir / "results.csv", rows, extra_columns=extra_columns)
        config = {
            "lab": self.name,
            "preset": self.preset,
            "settings": self.settings.to_dict(),
            "seed": self.seed,
            "seeds": self.seeds,
            "engine": self.engine,
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


def start(name, presets, *, notebook_seeds=1):
    """Begin a run of lab `name` with one of `presets` (see the module docstring for where options come from).

    `notebook_seeds`: how many seeds the lab runs in a notebook where COURSEKIT_SEEDS is not
    set (chosen per lab from what its seeds cost; the command line's default is 1).
    """
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
    count = options.seeds or notebook_seeds
    out_dir = pathlib.Path(options.out) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    inline = in_notebook()
    lab = Lab(
        name=name,
        preset=options.preset,
        settings=settings,
        seed=seed,
        seeds=[seed + index for index in range(count)],
        dataset_name=options.dataset,
        out_dir=out_dir,
        show=options.show,
        inline=inline and options.show,
        verbose=options.verbose,
        engine=options.engine,
        started_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        clock=time.perf_counter(),
    )
    _LAST[:] = [lab]
    return lab


def run(
    name,
    *,
    preset="full",
    dataset="auto",
    out="results",
    seed=0,
    seeds=1,
    show=False,
    verbose=1,
    overrides=None,
    engine="auto",
):
    """Run the lab script `labs/NAME.py` with these options; returns its `Lab` (after `finish`).

    `seeds`: the number of seeds (see the module docstring); None is the lab's notebook default.
    """
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds must be a positive integer; received seeds={seeds!r}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    _PENDING[:] = [Options(preset, dataset, out, seed, show, verbose, dict(overrides or {}), seeds, engine)]
    _LAST.clear()
    try:
        from labs import FOLDER, NAMES

        if name not in NAMES:
            raise ValueError(f"unknown lab {name!r}; valid: {', '.join(NAMES)}")
        runpy.run_path(str(FOLDER / f"{name}.py"), run_name="__main__")
    finally:
        _PENDING.clear()
    return _LAST[0]
