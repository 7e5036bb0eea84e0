"""The chapter's hyperparameter search as a keras-tuner run: settings, hypermodel, tuner.

Objective: accuracy on a validation split carved from the training images (never
the test set). By default, as the reference: learning rate log-uniform on
[1e-6, 1e-2], weight decay lambda log-uniform on [1e-8, 1e-4], SGD, batches of
100, a 784-[100]x6-10 net on the first 500 training images with 20% held out.
"""

import dataclasses
import os
import resource
import time
import warnings

import keras_tuner
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import trial as trial_module

from coursekit import optimizers, runtime
from coursekit.checks import check_number
from coursekit.models import classification_loss, multilayer_net
from coursekit.training import Variant, train_variants
from tuning.oracles import ORACLES, make_oracle

# keras-tuner 1.4 calls reporting per-epoch metrics from run_trial "deprecated"; it is the
# documented way to keep every epoch, and 1.4.8 is pinned.
warnings.filterwarnings("ignore", message="The use case of calling", category=DeprecationWarning)

BATCH_NORM = ("off", "on", "tune")


@dataclasses.dataclass
class SearchSettings:
    """Everything a search depends on (recorded in config.json)."""

    dataset: str = "auto"
    train_size: int = 500
    validation_fraction: float = 0.2
    hidden_sizes: list = dataclasses.field(default_factory=lambda: [100] * 6)
    batch_size: int = 100
    epochs: int = 50
    trials: int = 100
    oracle: str = "narrowing"
    learning_rate_range: tuple = (1e-6, 1e-2)
    weight_decay_range: tuple = (1e-8, 1e-4)
    optimizers: tuple = ("SGD",)
    initializers: tuple = ("he",)
    batch_norm: str = "off"
    max_dropout: float = 0.0
    mixed_precision: bool = False
    rounds: int | None = None
    keep: int | None = None
    margin: float = 0.1
    seed: int = 0

    def validate(self):
        """Raise ValueError naming the first bad setting."""
        check_number("trials", self.trials, low=1)
        check_number("epochs", self.epochs, low=1)
        check_number("batch_size", self.batch_size, low=1)
        check_number("train_size", self.train_size, low=2)
        check_number("max_dropout", self.max_dropout, low=0.0, high=1.0, high_open=True)
        check_number("margin", self.margin, low=0.0, high=1.0)
        if self.oracle not in ORACLES:
            raise ValueError(f"Unknown oracle {self.oracle!r}; valid: {', '.join(ORACLES)}")
        if self.batch_norm not in BATCH_NORM:
            raise ValueError(f"batch_norm must be one of {', '.join(BATCH_NORM)}; received {self.batch_norm!r}")
        for name, (low, high) in (
            ("learning_rate_range", self.learning_rate_range),
            ("weight_decay_range", self.weight_decay_range),
        ):
            if not 0 < low < high:
                raise ValueError(f"{name} must satisfy 0 < low < high; received {name}={(low, high)}")
        for name in self.optimizers:
            optimizers.get(name)
        if self.rounds is not None:
            check_number("rounds", self.rounds, low=1, high=self.trials)
        return self


def build_model(hp, settings, input_size, num_classes):
    """The hypermodel: a course net whose hyperparameters come from `hp`."""
    if settings.mixed_precision:
        runtime.set_mixed_precision(True)  # inside the build: the tuner clears the session per trial
    learning_rate = hp.Float("learning_rate", *settings.learning_rate_range, sampling="log")
    weight_decay = hp.Float("weight_decay", *settings.weight_decay_range, sampling="log")
    optimizer = _choice(hp, "optimizer", settings.optimizers)
    weight_init = _choice(hp, "weight_init", settings.initializers)
    batch_norm = hp.Boolean("batch_norm") if settings.batch_norm == "tune" else settings.batch_norm == "on"
    dropout = hp.Float("dropout", 0.0, settings.max_dropout) if settings.max_dropout > 0 else 0.0
    model = multilayer_net(
        input_size,
        settings.hidden_sizes,
        num_classes,
        weight_init=weight_init,
        batch_norm=batch_norm,
        dropout_rate=dropout,
        weight_decay=weight_decay,
    )
    model.compile(optimizers.get(optimizer, learning_rate=learning_rate), classification_loss(), metrics=["accuracy"])
    return model


def _choice(hp, name, options):
    return hp.Choice(name, list(options)) if len(options) > 1 else options[0]


def resident_memory_mb():
    """This process's resident memory now, in MiB (peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CourseTuner(keras_tuner.Tuner):
    """A Tuner that keeps every epoch's train and validation accuracy of every trial.

    Per trial: seeds from (seed, trial number), builds, trains on the training split
    with the kit's engine (see `fit_trial_model`), then reports each epoch's
    `val_accuracy` and `train_accuracy` (both splits evaluated in inference mode)
    to the oracle, plus duration, resident memory and compute dtype.
    """

    def __init__(self, settings, dataset, log_trials=False, **kwargs):
        self.settings, self.dataset, self.log_trials = settings, dataset, log_trials
        super().__init__(
            oracle=make_oracle(
                settings.oracle,
                max_trials=settings.trials,
                seed=settings.seed,
                epochs=settings.epochs,
                rounds=settings.rounds,
                keep=settings.keep,
                margin=settings.margin,
            ),
            hypermodel=lambda hp: build_model(hp, settings, dataset.num_features, dataset.num_classes),
            **kwargs,
        )

    def fit_trial_model(self, trial):
        """Seed, build and train the trial's model; returns (model, val accuracies, train accuracies).

        Training goes through `coursekit.training.train_variants` (one variant,
        ordinary epochs over fresh permutations, both splits evaluated in inference
        mode after each epoch): one compiled call per epoch, where `fit` pays Python
        overhead per step and per epoch. `python benchmarks/search_trial.py` measured a
        trial of the reference search at 0.22x the time of `fit` on TensorFlow (0.87 s
        against 3.96 s) and 0.72x on JAX (0.84 s against 1.15 s).
        """
        hp, data, settings = trial.hyperparameters, self.dataset, self.settings
        seed = settings.seed * 100_003 + int(trial.trial_id)
        runtime.seed_everything(seed)
        model = self._try_build(hp)
        with warnings.catch_warnings():  # said below, with the trial's id
            warnings.filterwarnings("ignore", message="variant 'trial' diverged")
            history = train_variants(
                [Variant("trial", model, model.optimizer)],
                data.x_train,
                data.y_train,
                batch_size=settings.batch_size,
                epochs=int(hp.values.get("tuner/epochs", settings.epochs)),
                sampling="epoch",
                eval_sets={"val_accuracy": (data.x_val, data.y_val), "train_accuracy": (data.x_train, data.y_train)},
                seed=seed,
                verbose=0,
            )["trial"]
        if history.diverged_at is not None:
            warnings.warn(f"trial {trial.trial_id}: the loss diverged at iteration {history.diverged_at}", stacklevel=2)
        val, train = ([value for _, value in history.metrics[name]] for name in ("val_accuracy", "train_accuracy"))
        return model, val, train

    def run_trial(self, trial, *args, **kwargs):
        started = time.perf_counter()
        model, val, train = self.fit_trial_model(trial)
        model.save_weights(self._get_checkpoint_fname(trial.trial_id))
        extra = {
            "duration_s": time.perf_counter() - started,
            "rss_mb": resident_memory_mb(),
            "compute_bits": 16 if "16" in model.dtype_policy.compute_dtype else 32,
        }
        for epoch, (val_accuracy, train_accuracy) in enumerate(zip(val, train), start=1):
            metrics = {"val_accuracy": val_accuracy, "train_accuracy": train_accuracy}
            if epoch == len(val):
                metrics.update(extra)
            self.oracle.update_trial(trial.trial_id, metrics, step=epoch)
        if self.log_trials:
            print(
                f"{self.tuner_id}: trial {trial.trial_id} val_accuracy={val[-1]:.4f} ({extra['duration_s']:.1f} s)",
                flush=True,
            )
        return {"val_accuracy": val[-1]}

    def search(self, *args, **kwargs):
        """keras-tuner's loop, but a worker told to wait (IDLE) sleeps instead of spinning."""
        if dist_utils.is_chief_oracle():
            return super().search(*args, **kwargs)
        if "verbose" in kwargs and not dist_utils.has_chief_oracle():
            self.oracle.verbose = kwargs["verbose"]
        self.on_search_begin()
        while True:
            self.pre_create_trial()
            trial = self.oracle.create_trial(self.tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED:
                break
            if trial.status == trial_module.TrialStatus.IDLE:
                time.sleep(0.5)
                continue
            self.on_trial_begin(trial)
            self._try_run_and_update_trial(trial, *args, **kwargs)
            self.on_trial_end(trial)
        self.on_search_end()

    def save(self):
        from coursekit.results import write_json

        if not self._is_worker():
            self.oracle.save()
        write_json(self._get_tuner_fname(), self.get_state())
