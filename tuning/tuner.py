"""keras-tuner's tuners, K trials per compiled program, for any compiled Keras model.

```python
from tuning import RandomSearch
tuner = RandomSearch(build, objective="val_accuracy", max_trials=100, population=20, directory="runs", seed=0)
tuner.search(x, y, validation_data=(x_val, y_val), epochs=50, batch_size=100, callbacks=[...])
tuner.trials_dataframe()        # pandas, one row per trial
tuner.get_best_models(1)        # as in keras-tuner
```

`PopulationTuner` is the one tuner class: keras-tuner's `Tuner`, whose search asks the oracle
for up to `population` trials at once (one `create_trial` per member, under the sub-ids
"TUNER_ID/0", "TUNER_ID/1", ...), builds each trial's model with `build(hp)` right after
seeding with the trial's seed, and trains them together with `coursekit.fitting.fit_population`:
`fit`'s semantics member by member, models of one architecture stacked into one vectorized
program. `RandomSearch`, `BayesianOptimization`, `Hyperband`, `GridSearch` and `Narrowing`
are that class with keras-tuner's oracle of the same name (the chapter's narrowing for
`Narrowing`), taking the arguments of keras-tuner's class of the same name plus
`population=K` and `score`.

- `executions_per_trial=E`: E members per trial, each with its own seed; each epoch's
  metrics are reported as their mean (the trial's curves), and the trial's score is the mean
  of the executions' scores, as keras-tuner averages them.
- `score="best"` (keras-tuner's): a trial scores its best epoch; `score="final"` (the book's):
  its last epoch.
- Callbacks: each member gets its own copies (as keras-tuner copies them per execution):
  EarlyStopping, TerminateOnNaN, CSVLogger and TensorBoard (each trial's scalars under
  `log_dir/<trial id>/execution<e>`, with an HParams summary so that TensorBoard's HParams
  dashboard lists the trials); another callback is an error that names it.
- Hyperband: a bracket's survivors continue from where their previous round stopped (the
  same weights, optimizer state and data order), so a continued trial equals one trained
  without the interruption; members cut at a rung cost nothing more.
- What cannot be vectorized trains one trial at a time through keras-tuner's own `fit` path,
  with one line saying why: data that is not arrays (a `tf.data.Dataset`, a `PyDataset`, a
  generator), `sample_weight` / `class_weight` / `steps_per_epoch` / `validation_freq`, a
  `HyperModel.fit` override, a model that overrides `train_step`. Models whose vectorized
  program fails to build (a layer the engine cannot stack) train one at a time inside the
  engine, also said once.
- Checkpoints, as resume and `get_best_models` need them: a trial's weights (its best
  epoch's, or last's) are saved when it beats every trial ended before it; `load_model` of a
  trial without saved weights trains it again with its seed (deterministic).
"""

import collections
import copy
import gc
import math
import os
import random
import resource
import signal
import statistics
import time
import traceback
import warnings

import keras
import keras_tuner
import numpy as np
from keras_tuner.engine.trial import TrialStatus

from coursekit import fitting, keras_internals
from coursekit.results import write_atomic, write_json
from tuning import internals, oracles

# keras-tuner 1.4 calls reporting per-epoch metrics from a tuner "deprecated"; it is the
# documented way to keep every epoch, and 1.4.8 is pinned.
warnings.filterwarnings("ignore", message="The use case of calling", category=DeprecationWarning)

FAULT_VARIABLE = "COURSEKIT_TUNING_FAULT"  # "POINT:N": SIGKILL at the N-th POINT (tests of resume)
SCORES = ("best", "final")
FIT_ARGUMENTS = (  # what `search` passes on to the engine, as `fit` means them
    "x",
    "y",
    "batch_size",
    "epochs",
    "verbose",
    "callbacks",
    "validation_split",
    "validation_data",
    "shuffle",
    "initial_epoch",
    "validation_batch_size",
)
ONE_AT_A_TIME = ("sample_weight", "class_weight", "steps_per_epoch", "validation_steps", "validation_freq")
DEFAULT_POPULATION = 20


class SearchError(ValueError):
    """A search that cannot run as asked (bad hypermodel, objective or data): one clear line, never a failed trial."""


def _check_input_shapes(model, x):
    """SearchError when the arrays' shapes differ from the model's declared inputs (where it declares them)."""
    try:
        declared = [tuple(tensor.shape) for tensor in model.inputs]
    except (AttributeError, ValueError):  # a subclassed model, or one without an Input: nothing declared
        return
    given = [tuple(np.shape(part)) for part in keras.tree.flatten(x)]
    if len(declared) != len(given):
        raise SearchError(f"the data does not fit the model build(hp) returns: {len(given)} inputs for {len(declared)}")
    for want, got in zip(declared, given):
        if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want[1:], got[1:])):
            raise SearchError(
                f"the data does not fit the model build(hp) returns: x has shape {got}, the model takes {want}"
            )


def seed_trial(seed):
    """Seed what a trial's model draws from: Python's `random` (every initializer's and dropout layer's seed),
    NumPy, and on PyTorch torch's global generator.

    The same models as after `keras.utils.set_random_seed(seed)`, without its
    `tf.random.set_seed`, which also clears TensorFlow's kernel cache and so doubled the
    time to build each trial's model (45 ms instead of 24 here); nothing in a trial uses
    TensorFlow's global seed (Keras 3 draws with explicit seeds).
    """
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


def resident_memory_mb():
    """This process's resident memory now, in MiB (peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PopulationTuner(keras_tuner.Tuner):
    """keras-tuner's `Tuner`, training up to `population` trials at once (see the module docstring).

    Args:
        oracle, hypermodel, **kwargs: As `keras_tuner.Tuner` (`directory`, `project_name`,
            `overwrite`, `executions_per_trial`, `max_model_size`, `optimizer`, `loss`,
            `metrics`, `distribution_strategy`, `tuner_id`, `logger`).
        population: K, the trials asked for and trained at once. Defaults to 20.
        score: "best" (keras-tuner's: a trial's best epoch) or "final" (its last epoch).
            Defaults to "best".
    """

    def __init__(self, oracle, hypermodel=None, *, population=None, score="best", **kwargs):
        if population is not None and (
            isinstance(population, bool) or not isinstance(population, int) or population < 1
        ):
            raise ValueError(f"population must be a positive integer; received population={population!r}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}; received score={score!r}")
        self.population, self.score = population or DEFAULT_POPULATION, score
        self.log_trials = False  # a line per ended trial (the chapter's command line, distributed)
        self._faults = collections.Counter()
        # Read before keras-tuner wraps the oracle in a client on a distributed search's worker.
        self.seed, self.max_epochs = getattr(oracle, "seed", None) or 0, getattr(oracle, "max_epochs", None)
        super().__init__(oracle, hypermodel, **kwargs)

    # -- the search loop -------------------------------------------------------------------

    def search(self, *fit_args, **fit_kwargs):
        """keras-tuner's `search`: `fit`'s arguments (x, y, validation_data, epochs, batch_size, callbacks, ...).

        One more keyword, `extra_validation={prefix: (x, y)}`, evaluates more data after every
        epoch like the validation data (the chapter's search: `{"train_": (x, y)}`).
        """
        if internals.is_chief_oracle():
            return super().search(*fit_args, **fit_kwargs)
        try:
            spec = self._fit_spec(fit_args, fit_kwargs)
        except fitting.NotVectorizable as reason:
            print(f"tuning: {reason}: the trials train one at a time with keras-tuner's fit", flush=True)
            fit_kwargs.pop("extra_validation", None)
            return super().search(*fit_args, **fit_kwargs)
        self._last_spec = spec
        if "verbose" in fit_kwargs and not internals.has_chief_oracle():
            self.oracle.verbose = fit_kwargs["verbose"]
        self.on_search_begin()
        while True:
            self.pre_create_trial()
            trials, statuses = self.take_trials()
            if trials:
                self.run_population(trials, spec)
            elif all(status == TrialStatus.STOPPED for status in statuses):
                break
            else:  # the oracle waits for results of trials running elsewhere
                time.sleep(0.2)
        self.on_search_end()

    def _fit_spec(self, fit_args, fit_kwargs):
        """`fit`'s arguments by name, checked; raises NotVectorizable for what trains one at a time."""
        names = FIT_ARGUMENTS[: len(fit_args)]
        spec = {**dict(zip(names, fit_args)), **fit_kwargs}
        unknown = set(spec) - set(FIT_ARGUMENTS) - set(ONE_AT_A_TIME) - {"extra_validation"}
        if unknown:
            raise SearchError(f"search() got arguments fit does not take: {', '.join(sorted(unknown))}")
        for name in ONE_AT_A_TIME:
            if spec.get(name) is not None:
                raise fitting.NotVectorizable(f"fit's {name} is not supported by the population engine")
        if type(self.hypermodel).fit is not keras_tuner.HyperModel.fit:
            raise fitting.NotVectorizable(f"{type(self.hypermodel).__name__} overrides HyperModel.fit")
        if spec.get("x") is None or spec.get("y") is None:
            raise fitting.NotVectorizable("x and y are not both given as arrays")
        fitting.check_vectorizable(spec["x"], spec["y"])
        if spec.get("validation_data") is not None:
            fitting.check_vectorizable(*spec["validation_data"][:2])
        fitting.check_callbacks([c for c in spec.get("callbacks") or () if not _is_tensorboard(c)])
        self._probe(spec)
        return spec

    def take_trials(self):
        """Up to K trials from the oracle: `(running trials, status of every answer)`.

        Every sub-id asks in every pass, so that each one receives its STOPPED at the end
        (the chief of a distributed search waits until every tuner id it saw has).
        """
        trials, statuses = [], []
        for member in range(self.population):
            trial = self.oracle.create_trial(f"{self.tuner_id}/{member}")
            statuses.append(trial.status)
            if trial.status == TrialStatus.RUNNING:
                trials.append(trial)
        return trials, statuses

    # -- one population ----------------------------------------------------------------------

    def run_population(self, trials, spec):
        """Train `trials` together (those of equal epochs), report each one's metrics, end each one."""
        for trial in trials:
            self.on_trial_begin(trial)
        by_epochs = collections.defaultdict(list)  # Hyperband hands out trials of different lengths
        for trial in trials:
            by_epochs[self._epochs(trial, spec)].append(trial)
        for (initial_epoch, epochs), group in by_epochs.items():
            try:
                results = self.fit_trials(group, spec, initial_epoch, epochs)
            except SearchError:
                raise
            except Exception as error:  # as keras-tuner: the trials fail, the search goes on
                if isinstance(error, keras_tuner.errors.FatalError):
                    raise
                for trial in group:
                    self._fail(trial, error)
                continue
            self._fault_point("population_trained")
            self._keep_weights_of_a_new_best(results)
            for trial, result in results.items():
                if isinstance(result, Exception):
                    self._fail(trial, result)
                    continue
                self.report(trial, result)
                trial.status = TrialStatus.COMPLETED
                self.oracle.end_trial(trial)
                self._fault_point("trial_ended")
        gc.collect()  # the population's models (reference cycles): memory stays flat
        self.save()

    def _fail(self, trial, error):
        trial.status = (
            TrialStatus.FAILED if isinstance(error, keras_tuner.errors.FailedTrialError) else TrialStatus.INVALID
        )
        trial.message = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.oracle.end_trial(trial)

    def _epochs(self, trial, spec):
        values = trial.hyperparameters.values
        if "tuner/epochs" in values:
            return int(values.get("tuner/initial_epoch", 0)), int(values["tuner/epochs"])
        return int(spec.get("initial_epoch") or 0), int(spec.get("epochs") or 1)

    def trial_seed(self, trial, execution=0):
        """The seed of a trial's execution: from the oracle's seed and the trial number (a continued
        Hyperband trial takes the seed of the trial it continues)."""
        previous = trial.hyperparameters.values.get("tuner/trial_id")
        if previous is not None:
            return self.trial_seed(self.oracle.get_trial(previous), execution)
        return (int(self.seed) * 100_003 + int(trial.trial_id) + 1_000_003 * execution) % 2**31

    def build_trial_model(self, trial, execution=0):
        """Seed with the trial's seed, then build its compiled model with `build(hp)` (and the tuner's overrides)."""
        seed_trial(self.trial_seed(trial, execution))
        model = internals.build_hypermodel(self, trial.hyperparameters)
        if not isinstance(model, keras.Model):
            raise SearchError(f"build(hp) must return a keras.Model; it returned {type(model).__name__}")
        if not getattr(model, "compiled", False):
            raise SearchError(
                "build(hp) returned a model that is not compiled: call model.compile(optimizer, loss, metrics) in it"
            )
        if self.max_model_size and model.count_params() > self.max_model_size:
            raise keras_tuner.errors.FailedTrialError(
                f"the model has {model.count_params()} parameters, more than max_model_size={self.max_model_size}"
            )
        return model

    def _probe(self, spec):
        """Build one model with the space's default values and check it against the data and the objective.

        Raises SearchError (uncompiled model, data that does not fit it, an objective the search
        does not compute) before any trial trains; NotVectorizable for a model that overrides
        `train_step`.
        """
        hp = self.oracle.get_space()
        model = internals.build_hypermodel(self, hp)
        if not getattr(model, "compiled", False):
            raise SearchError(
                "build(hp) returned a model that is not compiled: call model.compile(optimizer, loss, metrics) in it"
            )
        if type(model).train_step is not keras.Model.train_step:
            raise fitting.NotVectorizable(f"{type(model).__name__} overrides train_step")
        x, y = (keras.tree.map_structure(lambda a: a[:2], part) for part in (spec["x"], spec["y"]))
        _check_input_shapes(model, spec["x"])
        try:
            keras_internals.build_for_training(model, x, y)
            model.compute_loss(x=x, y=y, y_pred=model(x, training=False), training=False)
        except Exception as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SearchError(f"the data does not fit the model build(hp) returns: {message}") from None
        names = sorted(model.get_metrics_result(), key=lambda name: (name != "loss", name))  # one order on every Keras
        computed = [*names]
        if spec.get("validation_data") is not None or spec.get("validation_split"):
            computed += [f"val_{name}" for name in names]
        computed += [f"{prefix}{name}" for prefix in spec.get("extra_validation") or {} for name in names]
        if not self.oracle.objective.has_value(dict.fromkeys(computed, 0.0)):
            raise SearchError(
                f"the objective {self.oracle.objective.name!r} is not computed by this search; it computes: {', '.join(computed)}"
            )

    def fit_trials(self, trials, spec, initial_epoch, epochs):
        """Build and train `trials` together: `{trial: (histories of its executions, extras)}` (or its build error)."""
        started = time.perf_counter()
        members, built, results = [], {}, {}
        for trial in trials:
            try:
                trial_members = []
                for execution in range(self.executions_per_trial):
                    model = self.build_trial_model(trial, execution)
                    trial_members.append(
                        fitting.Member(
                            f"{trial.trial_id}/{execution}",
                            model,
                            seed=self.trial_seed(trial, execution),
                            callbacks=self._callbacks(trial, execution, spec),
                            state=self._previous_state(trial, execution),
                        )
                    )
            except SearchError:
                raise
            except Exception as error:
                results[trial] = error
                continue
            built[trial] = trial_members
            members += trial_members
        if not members:
            return results
        histories = fitting.fit_population(
            members,
            spec["x"],
            spec["y"],
            batch_size=spec.get("batch_size"),
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation_data=spec.get("validation_data"),
            validation_split=spec.get("validation_split") or 0.0,
            validation_batch_size=spec.get("validation_batch_size"),
            extra_validation=spec.get("extra_validation"),
            shuffle=spec.get("shuffle", True),
            verbose=0,
        )
        seconds = (time.perf_counter() - started) / len(built)
        for trial, trial_members in built.items():
            if self.max_epochs and epochs < self.max_epochs:  # Hyperband may continue it in a later round
                self._keep_states(trial, trial_members)
            results[trial] = (
                [histories[m.name] for m in trial_members],
                {
                    "tuner/seconds": seconds,
                    "tuner/rss_mb": resident_memory_mb(),
                    "tuner/population": len(members),
                    "tuner/compute_bits": 16 if "16" in trial_members[0].model.dtype_policy.compute_dtype else 32,
                },
                trial_members,
            )
        return results

    def _callbacks(self, trial, execution, spec):
        """The member's own copies of the search's callbacks; a TensorBoard becomes the member's writer."""
        callbacks = []
        for callback in copy.deepcopy(list(spec.get("callbacks") or ())):
            if _is_tensorboard(callback):
                callback = TrialTensorBoard(callback.log_dir, trial, execution)
            callbacks.append(callback)
        return [*callbacks, _BestEpoch(self.oracle.objective, self.score, self._best_score())]

    # -- Hyperband: continued trials -----------------------------------------------------------

    def _keep_states(self, trial, members):
        """Save each execution's final state (weights, optimizer) in the trial's folder: a later round may continue it.

        Only on disk (read back when a trial continues it): a search keeps no trial's arrays in memory.
        """
        arrays = {}
        for e, member in enumerate(members):
            model = member.model
            parts = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables)
            arrays |= {f"{e}/{p}/{i}": v.numpy() for p, part in enumerate(parts) for i, v in enumerate(part)}
        path = os.path.join(self.get_trial_dir(trial.trial_id), "final_state.npz")
        write_atomic(path, _npz_bytes(arrays))

    def _previous_state(self, trial, execution):
        """The saved final state of execution `execution` of the trial this one continues (Hyperband), or None."""
        previous = trial.hyperparameters.values.get("tuner/trial_id")
        if previous is None:
            return None
        path = os.path.join(self.get_trial_dir(previous), "final_state.npz")
        if not os.path.exists(path):
            return None  # as keras-tuner when its checkpoint is missing: trained from scratch
        state = [[], [], []]
        with np.load(path) as saved:
            for key in sorted(saved.files, key=lambda k: tuple(int(p) for p in k.split("/"))):
                e, part, _ = (int(p) for p in key.split("/"))
                if e == execution:
                    state[part].append(saved[key])
        return state if any(state) else None

    # -- reporting -----------------------------------------------------------------------------

    def report(self, trial, result):
        """Each epoch's metrics (the executions' mean) to the oracle, then the trial's score, as keras-tuner scores it."""
        histories, extras, _ = result
        epochs = sorted({epoch for history in histories for epoch in history.epoch})
        for epoch in epochs:
            logs = collections.defaultdict(list)
            for history in histories:
                if epoch in history.epoch:
                    for name, values in history.history.items():
                        logs[name].append(values[history.epoch.index(epoch)])
            metrics = {name: float(np.mean(values)) for name, values in logs.items()}
            if epoch == epochs[-1]:
                score, step, execution = self._score(histories)
                metrics.update(extras)
                metrics.update({"tuner/score": score, "tuner/best_step": step, "tuner/best_execution": execution})
                metrics["tuner/epochs"] = max(len(history.epoch) for history in histories)
            self.oracle.update_trial(trial.trial_id, metrics, step=epoch)
        if self.log_trials:
            print(
                f"{self.tuner_id}: trial {trial.trial_id} {self.oracle.objective.name}={self._score(histories)[0]:.4f} "
                f"({extras['tuner/seconds']:.2f} s, population of {extras['tuner/population']})",
                flush=True,
            )

    def _score(self, histories):
        """`(score, best step, best execution)`: the executions' mean of their best (or final) objective value."""
        objective, values, steps = self.oracle.objective, [], []
        for history in histories:
            epoch_values = [
                objective.get_value({k: v[i] for k, v in history.history.items()}) for i in range(len(history.epoch))
            ]
            index = len(epoch_values) - 1 if self.score == "final" else _best_index(objective, epoch_values)
            values.append(epoch_values[index])
            steps.append(history.epoch[index])
        best = _best_index(objective, values)
        return float(np.mean(values)), int(statistics.mean(steps)), best

    def _best_score(self):
        best = self.oracle.get_best_trials(1)
        return best[0].score if best and best[0].status == TrialStatus.COMPLETED else None

    def _keep_weights_of_a_new_best(self, results):
        """Save the weights of the population's best trial if it beats every trial ended so far."""
        objective, best = self.oracle.objective, self._best_score()
        scored = [(trial, r) for trial, r in results.items() if not isinstance(r, Exception)]
        if not scored:
            return
        trial, (histories, _, members) = max(scored, key=lambda item: _ranked(objective, self._score(item[1][0])[0]))
        score, _, execution = self._score(histories)
        if best is not None and not objective.better_than(score, best):
            return
        member = members[execution]
        weights = next(c for c in member.callbacks if isinstance(c, _BestEpoch)).weights
        if weights is not None:
            member.model.set_weights(weights)
        member.model.save_weights(internals.checkpoint_path(self, trial.trial_id))

    # -- models after the search ----------------------------------------------------------------

    def load_model(self, trial):
        """The trial's trained model: its saved weights, or (none on this disk) trained again with its seed."""
        path = internals.checkpoint_path(self, trial.trial_id)
        if os.path.exists(path):
            model = self.build_trial_model(trial)
            model.optimizer.build(model.trainable_variables)  # (the file holds its state too)
            model.load_weights(path)
            return model
        return self.retrain(trial)

    def retrain(self, trial):
        """Train the trial's best execution again, alone, up to its best (or last) epoch: the same model."""
        if not hasattr(self, "_last_spec"):
            raise SearchError(
                f"trial {trial.trial_id} has no saved weights and this tuner has not searched: call search first"
            )
        execution = int(trial.metrics.get_last_value("tuner/best_execution") or 0)
        step = int(trial.metrics.get_last_value("tuner/best_step") or 0)
        member = fitting.Member(
            "retrain", self.build_trial_model(trial, execution), seed=self.trial_seed(trial, execution)
        )
        spec = self._last_spec
        initial_epoch, _ = self._epochs(trial, spec)
        member.state = self._previous_state(trial, execution)
        fitting.fit_population(
            [member],
            spec["x"],
            spec["y"],
            batch_size=spec.get("batch_size"),
            epochs=step + 1,
            initial_epoch=initial_epoch,
            shuffle=spec.get("shuffle", True),
        )
        return member.model

    def trials_dataframe(self):
        """One row per trial: id, status, every hyperparameter, score, best step, epochs run, seconds, population."""
        import pandas as pd

        names = [hp.name for hp in self.oracle.get_space().space]
        rows = []
        for trial_id in sorted(self.oracle.trials):
            trial = self.oracle.trials[trial_id]
            row = {"trial_id": trial_id, "status": trial.status}
            row.update({name: trial.hyperparameters.values.get(name) for name in names})
            row.update({"score": trial.score, "best_step": trial.best_step})
            for column, metric in (
                ("epochs", "tuner/epochs"),
                ("seconds", "tuner/seconds"),
                ("population", "tuner/population"),
            ):
                row[column] = last_value(trial, metric)
            rows.append(row)
        return pd.DataFrame(
            rows, columns=["trial_id", "status", *names, "score", "best_step", "epochs", "seconds", "population"]
        )

    # -- one trial at a time (keras-tuner's own path) ------------------------------------------

    def run_trial(self, trial, *args, **kwargs):
        """keras-tuner's `run_trial` (fit), for searches the engine cannot vectorize; seeded with the trial's seed."""
        seed_trial(self.trial_seed(trial))
        return super().run_trial(trial, *args, **kwargs)

    def _fault_point(self, name):
        """Tests: SIGKILL this process the n-th time it gets here, when COURSEKIT_TUNING_FAULT="name:n"."""
        self._faults[name] += 1
        if os.environ.get(FAULT_VARIABLE) == f"{name}:{self._faults[name]}":
            os.kill(os.getpid(), signal.SIGKILL)

    def save(self):
        """The oracle's and the tuner's state, each file written whole."""
        if not (internals.has_chief_oracle() and not internals.is_chief_oracle()):  # a worker has no oracle of its own
            self.oracle.save()
        write_json(internals.tuner_state_path(self), self.get_state())


def last_value(trial, metric):
    """The last value of a metric of a trial (NaN when it was never reported)."""
    if not trial.metrics.exists(metric):
        return float("nan")
    return trial.metrics.get_last_value(metric)


def _best_index(objective, values):
    ranked = [_ranked(objective, v) for v in values]
    return int(np.argmax(ranked))


def _ranked(objective, value):
    """A number that is larger when `value` is better for `objective` (NaN worst)."""
    if value is None or not math.isfinite(value):
        return -math.inf
    return value if objective.direction == "max" else -value


def _is_tensorboard(callback):
    return isinstance(callback, keras.callbacks.TensorBoard)


def _npz_bytes(arrays):
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class _BestEpoch(fitting.EpochCallback):
    """Keeps the member's weights of its best epoch (for `score="best"`) when it could be a new best trial."""

    def __init__(self, objective, score, threshold):
        super().__init__()
        self.objective, self.score, self.threshold = objective, score, threshold
        self.best, self.weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        if self.score == "final" or not self.objective.has_value(logs):
            return
        value = self.objective.get_value(logs)
        improves = self.best is None or self.objective.better_than(value, self.best)
        if improves and math.isfinite(value):
            self.best = value
            if self.threshold is None or self.objective.better_than(value, self.threshold):
                self.weights = self.model.get_weights()


class TrialTensorBoard(fitting.EpochCallback):
    """What keras-tuner's TensorBoard gives each trial: epoch scalars under `log_dir/<trial>/execution<e>`
    ("train" and "validation" runs, named as Keras' TensorBoard names them) and an HParams summary."""

    def __init__(self, log_dir, trial, execution):
        super().__init__()
        self.log_dir = os.path.join(str(log_dir), str(trial.trial_id), f"execution{execution}")
        self.hparams = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        self.trial_id = str(trial.trial_id)

    def on_train_begin(self, logs=None):
        try:
            import tensorflow as tf
            from tensorboard.plugins.hparams import api as hparams_api
        except ImportError as error:
            raise SearchError(
                f"the TensorBoard callback needs TensorFlow and TensorBoard installed ({error})"
            ) from None
        self._tf = tf
        self._writers = {
            run: tf.summary.create_file_writer(os.path.join(self.log_dir, run)) for run in ("train", "validation")
        }
        with tf.summary.create_file_writer(self.log_dir).as_default():
            hparams_api.hparams(self.hparams, trial_id=self.trial_id)

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            run, metric = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            with self._writers[run].as_default():
                self._tf.summary.scalar(f"epoch_{metric}", value, step=epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.flush()
            writer.close()


# -------------------------------------------------------------------------------------------------
# The drop-in tuners: keras-tuner's classes of the same name, with population=K
# -------------------------------------------------------------------------------------------------

ORACLE_ARGUMENTS = (  # keras-tuner's oracle arguments, and the kit's `workers` (a distributed search's chief)
    "hyperparameters",
    "tune_new_entries",
    "allow_new_entries",
    "max_retries_per_trial",
    "max_consecutive_failed_trials",
    "workers",
)


def _split(kwargs):
    oracle = {k: kwargs.pop(k) for k in ORACLE_ARGUMENTS if k in kwargs}
    return oracle, kwargs


def _objective(objective):
    return "val_loss" if objective is None else objective


class RandomSearch(PopulationTuner):
    """keras-tuner's `RandomSearch` (same arguments), K trials at a time."""

    def __init__(self, hypermodel=None, objective=None, max_trials=10, seed=None, **kwargs):
        oracle_kwargs, kwargs = _split(kwargs)
        oracle = oracles.RandomOracle(
            objective=_objective(objective), max_trials=max_trials, seed=seed, **oracle_kwargs
        )
        super().__init__(oracle, hypermodel, **kwargs)


class GridSearch(PopulationTuner):
    """keras-tuner's `GridSearch` (same arguments), K trials at a time."""

    def __init__(self, hypermodel=None, objective=None, max_trials=None, seed=None, **kwargs):
        oracle_kwargs, kwargs = _split(kwargs)
        oracle = oracles.GridOracle(objective=_objective(objective), max_trials=max_trials, seed=seed, **oracle_kwargs)
        super().__init__(oracle, hypermodel, **kwargs)


class BayesianOptimization(PopulationTuner):
    """keras-tuner's `BayesianOptimization` (same arguments), K trials at a time (see `oracles.BayesianOracle`)."""

    def __init__(
        self,
        hypermodel=None,
        objective=None,
        max_trials=10,
        num_initial_points=None,
        alpha=1e-4,
        beta=2.6,
        seed=None,
        **kwargs,
    ):
        oracle_kwargs, kwargs = _split(kwargs)
        oracle = oracles.BayesianOracle(
            objective=_objective(objective),
            max_trials=max_trials,
            num_initial_points=num_initial_points,
            alpha=alpha,
            beta=beta,
            seed=seed,
            **oracle_kwargs,
        )
        super().__init__(oracle, hypermodel, **kwargs)


class Hyperband(PopulationTuner):
    """keras-tuner's `Hyperband` (same arguments), K trials at a time; survivors continue where they stopped."""

    def __init__(
        self, hypermodel=None, objective=None, max_epochs=100, factor=3, hyperband_iterations=1, seed=None, **kwargs
    ):
        oracle_kwargs, kwargs = _split(kwargs)
        oracle = oracles.HyperbandOracle(
            _objective(objective),
            max_epochs=max_epochs,
            factor=factor,
            hyperband_iterations=hyperband_iterations,
            seed=seed,
            **oracle_kwargs,
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


class Narrowing(PopulationTuner):
    """The chapter's narrowing random search (`oracles.NarrowingOracle`): rounds, each range shrunk to the best trials."""

    def __init__(
        self, hypermodel=None, objective=None, max_trials=100, rounds=None, keep=None, margin=0.1, seed=None, **kwargs
    ):
        oracle_kwargs, kwargs = _split(kwargs)
        oracle = oracles.NarrowingOracle(
            objective=_objective(objective),
            max_trials=max_trials,
            rounds=rounds,
            keep=keep,
            margin=margin,
            seed=seed,
            **oracle_kwargs,
        )
        super().__init__(oracle, hypermodel, **kwargs)
