"""The chapter's hyperparameter search as a keras-tuner run: settings, hypermodel, tuner.

Objective: accuracy on a validation split carved from the training images (never
the test set). By default, as the reference: learning rate log-uniform on
[1e-6, 1e-2], weight decay lambda log-uniform on [1e-8, 1e-4], SGD, batches of
100, a 784-[100]x6-10 net on the first 500 training images with 20% held out.
"""

import collections
import dataclasses
import gc
import math
import os
import random
import resource
import signal
import time
import traceback
import warnings

import keras_tuner
import numpy as np
from keras_tuner.engine.trial import TrialStatus

from coursekit import optimizers, runtime
from coursekit.checks import check_number
from coursekit.models import classification_loss, multilayer_net
from coursekit.results import write_json
from coursekit.training import Variant, train_variants
from tuning import internals
from tuning.oracles import ORACLES, make_oracle

# keras-tuner 1.4 calls reporting per-epoch metrics from run_trial "deprecated"; it is the
# documented way to keep every epoch, and 1.4.8 is pinned.
warnings.filterwarnings("ignore", message="The use case of calling", category=DeprecationWarning)

BATCH_NORM = ("off", "on", "tune")
FAULT_VARIABLE = "COURSEKIT_TUNING_FAULT"  # "POINT:N": SIGKILL at the N-th POINT (tests of resume)


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
    population: int | None = None
    workers: int | None = None
    seed: int = 0

    def population_size(self):
        """K, the trials trained at once: `population`, by default a narrowing round (20 of 100 trials)."""
        rounds = self.rounds or math.ceil(self.trials / 20)
        return self.population or math.ceil(self.trials / rounds)

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
        for name in ("population", "workers"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=1)
        return self


def build_model(hp, settings, input_size, num_classes):
    """The hypermodel: a course net whose hyperparameters come from `hp`."""
    runtime.set_mixed_precision(settings.mixed_precision)  # global: set it for every model, whatever came before
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


def seed_trial(seed):
    """Seed what a trial's model draws from: Python's `random` (every initializer's and dropout layer's seed) and NumPy.

    The same models as after `runtime.seed_everything(seed)` (a test checks it), without its
    `tf.random.set_seed`, which also clears TensorFlow's kernel cache and so doubled the
    time to build each trial's model (45 ms instead of 24 here); nothing in a trial uses
    TensorFlow's global seed (Keras 3 draws with explicit seeds).
    """
    random.seed(seed)
    np.random.seed(seed)


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
    """A Tuner that trains up to `settings.population` trials at once, as one population.

    `search` asks the oracle for up to K trials (one `create_trial` per member, under the
    sub-ids "TUNER_ID/0", "TUNER_ID/1", ...), as many as it hands out before it must wait
    (IDLE) or stop. `run_population` then seeds and builds each trial's model on its own
    (seed from (seed, trial number)), trains them together with the kit's engine
    (`coursekit.training.train_variants`, engine "population": stacked parameters, one
    compiled program; each trial keeps its own initial weights, minibatch order and dropout
    masks, so its result does not depend on K or on its batch-mates), and reports each
    trial's per-epoch `val_accuracy` and `train_accuracy` (both splits in inference mode),
    plus duration (the population's time per member), resident memory, compute dtype and
    population size, to the oracle on its own before ending it.

    Bookkeeping is what resume and the report need: no `clear_session` per trial (0.2 s
    each, most of it a garbage collection, done once per population instead), the
    weights of a trial saved only if it beats every trial ended before it (the report
    evaluates the best trial), the tuner's state saved once per population.
    """

    def __init__(self, settings, dataset, log_trials=False, **kwargs):
        self.settings, self.dataset, self.log_trials = settings, dataset, log_trials
        self._faults = collections.Counter()
        super().__init__(
            oracle=make_oracle(
                settings.oracle,
                max_trials=settings.trials,
                seed=settings.seed,
                epochs=settings.epochs,
                rounds=settings.rounds,
                keep=settings.keep,
                margin=settings.margin,
                workers=settings.workers,
            ),
            hypermodel=lambda hp: build_model(hp, settings, dataset.num_features, dataset.num_classes),
            **kwargs,
        )

    # -- the search loop -------------------------------------------------------------------

    def search(self, *args, **kwargs):
        """keras-tuner's loop, one population at a time (the chief only serves the oracle)."""
        if internals.is_chief_oracle():
            return super().search(*args, **kwargs)
        if "verbose" in kwargs and not internals.has_chief_oracle():
            self.oracle.verbose = kwargs["verbose"]
        self.on_search_begin()
        while True:
            self.pre_create_trial()
            trials, statuses = self.take_trials()
            if trials:
                self.run_population(trials)
            elif all(status == TrialStatus.STOPPED for status in statuses):
                break
            else:  # the oracle waits for results of trials running elsewhere
                time.sleep(0.2)
        self.on_search_end()

    def take_trials(self):
        """Up to K trials from the oracle: `(running trials, status of every answer)`.

        Every sub-id asks in every pass, so that each one receives its STOPPED at the end
        (the chief of a distributed search waits until every tuner id it saw has).
        """
        trials, statuses = [], []
        for member in range(self.population_size()):
            trial = self.oracle.create_trial(f"{self.tuner_id}/{member}")
            statuses.append(trial.status)
            if trial.status == TrialStatus.RUNNING:
                trials.append(trial)
        return trials, statuses

    def population_size(self):
        """K: `settings.population`, by default the size of a narrowing round."""
        return self.settings.population_size()

    # -- one population ----------------------------------------------------------------------

    def run_population(self, trials):
        """Train `trials` together, report each one's metrics, end each one."""
        for trial in trials:
            self.on_trial_begin(trial)
        by_epochs = collections.defaultdict(list)  # Hyperband hands out trials of different lengths
        for trial in trials:
            by_epochs[self.trial_epochs(trial)].append(trial)
        for group in by_epochs.values():
            try:
                results = self.fit_population(group)
            except Exception as error:  # as keras-tuner: the trials fail, the search goes on
                if isinstance(error, keras_tuner.errors.FatalError):
                    raise
                for trial in group:
                    trial.status = (
                        TrialStatus.FAILED
                        if isinstance(error, keras_tuner.errors.FailedTrialError)
                        else TrialStatus.INVALID
                    )
                    trial.message = traceback.format_exc()
                    self.oracle.end_trial(trial)
                continue
            self._fault_point("population_trained")
            self._keep_weights_of_a_new_best(group, results)
            for trial, (_, val, train, extra) in zip(group, results):
                self.report(trial, val, train, extra)
                trial.status = TrialStatus.COMPLETED
                self.oracle.end_trial(trial)
                self._fault_point("trial_ended")
        self.save()

    def trial_epochs(self, trial):
        return int(trial.hyperparameters.values.get("tuner/epochs", self.settings.epochs))

    def fit_population(self, trials):
        """Seed, build and train the trials' models together: one `(model, val, train, extra)` per trial.

        Each model is built right after seeding with its trial's seed, exactly as if it were
        trained alone; its minibatch order comes from the same seed (`Variant.seed`).
        """
        started = time.perf_counter()
        settings, data = self.settings, self.dataset
        gc.collect()  # the last population's models (reference cycles): memory stays flat
        variants = []
        for trial in trials:
            seed = self.trial_seed(trial)
            seed_trial(seed)
            model = self.hypermodel.build(trial.hyperparameters)
            variants.append(Variant(trial.trial_id, model, model.optimizer, seed=seed))
        with warnings.catch_warnings():  # said below, with the trial's id
            warnings.filterwarnings("ignore", message="variant .* diverged")
            histories = train_variants(
                variants,
                data.x_train,
                data.y_train,
                batch_size=settings.batch_size,
                epochs=self.trial_epochs(trials[0]),
                sampling="epoch",
                eval_sets={"val_accuracy": (data.x_val, data.y_val), "train_accuracy": (data.x_train, data.y_train)},
                verbose=0,
                engine="population",
            )
        duration = (time.perf_counter() - started) / len(trials)
        results = []
        for variant in variants:
            history = histories[variant.name]
            if history.diverged_at is not None:
                warnings.warn(
                    f"trial {variant.name}: the loss diverged at iteration {history.diverged_at}", stacklevel=2
                )
            val, train = ([value for _, value in history.metrics[name]] for name in ("val_accuracy", "train_accuracy"))
            extra = {
                "duration_s": duration,
                "rss_mb": resident_memory_mb(),
                "compute_bits": 16 if "16" in variant.model.dtype_policy.compute_dtype else 32,
                "population": history.trained_with,  # trials trained in one vectorized program with it
            }
            results.append((variant.model, val, train, extra))
        return results

    def fit_trial_model(self, trial):
        """Train one trial alone (a population of one); returns `(model, val accuracies, train accuracies)`."""
        model, val, train, _ = self.fit_population([trial])[0]
        return model, val, train

    def trained_model(self, trial):
        """The trial's trained model: its saved weights, or (none on this disk) trained again with its seed.

        Returns `(model, how it was obtained)`.
        """
        path = internals.checkpoint_path(self, trial.trial_id)
        if os.path.exists(path):
            model = self.hypermodel.build(trial.hyperparameters)
            model.load_weights(path)
            return model, "the trial's saved weights"
        return self.fit_trial_model(trial)[0], "retrained with the trial's seed"

    def trial_seed(self, trial):
        return self.settings.seed * 100_003 + int(trial.trial_id)

    def report(self, trial, val, train, extra):
        """Each epoch's accuracies to the oracle (the extras with the last epoch)."""
        for epoch, (val_accuracy, train_accuracy) in enumerate(zip(val, train), start=1):
            metrics = {"val_accuracy": val_accuracy, "train_accuracy": train_accuracy}
            if epoch == len(val):
                metrics.update(extra)
            self.oracle.update_trial(trial.trial_id, metrics, step=epoch)
        if self.log_trials:
            print(
                f"{self.tuner_id}: trial {trial.trial_id} val_accuracy={val[-1]:.4f} "
                f"({extra['duration_s']:.2f} s, population of {extra['population']})",
                flush=True,
            )

    def _keep_weights_of_a_new_best(self, trials, results):
        """Save the weights of the population's best trial if it beats every trial ended so far."""
        best = self.oracle.get_best_trials(1)
        best_score = best[0].score if best and best[0].status == TrialStatus.COMPLETED else -math.inf
        index = int(np.argmax([val[-1] for _, val, _, _ in results]))
        if results[index][1][-1] > best_score:
            results[index][0].save_weights(internals.checkpoint_path(self, trials[index].trial_id))

    def _fault_point(self, name):
        """Tests: SIGKILL this process the n-th time it gets here, when COURSEKIT_TUNING_FAULT="name:n"."""
        self._faults[name] += 1
        if os.environ.get(FAULT_VARIABLE) == f"{name}:{self._faults[name]}":
            os.kill(os.getpid(), signal.SIGKILL)

    def save(self):
        if not (internals.has_chief_oracle() and not internals.is_chief_oracle()):  # a worker has no oracle of its own
            self.oracle.save()
        write_json(internals.tuner_state_path(self), self.get_state())
