"""The one place where the search relies on keras-tuner internals (1.4.8); tests/test_tuning.py checks them.

Everything else in `tuning/` uses keras-tuner's public API. What lives here:

- `has_chief_oracle()`, `is_chief_oracle()`: the distributed mode's environment variables,
  as keras-tuner reads them (`keras_tuner.src.distribute.utils`).
- `OracleInternals`, mixed into every oracle: its state and trial files written atomically
  (`Oracle.save`, `Oracle._save_trial`), a running trial's file written once, when it is
  created (its metrics reach the file when it ends: a trial interrupted by a kill runs again
  from scratch anyway), an `update_trial` without keras-tuner's per-call recomputation of
  every metric's best value (O(epochs) per call: 50 ms per 50-epoch trial), and the reload
  fix of `set_state` (which relies on the order in which `Oracle.end_trial` writes files).
- `checkpoint_path`, `tuner_state_path`: the tuner's own file names
  (`Tuner._get_checkpoint_fname`, `BaseTuner._get_tuner_fname`).
- `build_hypermodel`: a trial's model as keras-tuner builds it (`Tuner._build_hypermodel`: the
  hypermodel's `build(hp)` inside the tuner's distribution strategy, with the tuner's
  `optimizer`/`loss`/`metrics` overrides), without `_try_build`'s `clear_session()` per model.
"""

import os

import keras_tuner
from keras_tuner.engine.trial import TrialStatus
from keras_tuner.src.distribute import utils as _dist_utils

from coursekit.results import write_json

# (owner, attribute) pairs this module relies on; tests/test_tuning.py fails if one disappears.
USED = (
    ("keras_tuner.src.distribute.utils", "has_chief_oracle"),
    ("keras_tuner.src.distribute.utils", "is_chief_oracle"),
    ("keras_tuner.Oracle", "_save_trial"),
    ("keras_tuner.Oracle", "_get_trial_dir"),
    ("keras_tuner.Oracle", "_get_oracle_fname"),
    ("keras_tuner.Oracle", "_retry_queue"),
    ("keras_tuner.Oracle", "_check_objective_found"),
    ("keras_tuner.src.engine.metrics_tracking.MetricsTracker", "metrics"),
    ("keras_tuner.src.engine.metrics_tracking.MetricHistory", "update"),
    ("keras_tuner.Tuner", "_get_checkpoint_fname"),
    ("keras_tuner.Tuner", "_build_hypermodel"),
    ("keras_tuner.Tuner", "_get_tuner_fname"),
)


def has_chief_oracle():
    """Whether this process takes part in a distributed search (KERASTUNER_ORACLE_IP is set)."""
    return _dist_utils.has_chief_oracle()


def is_chief_oracle():
    """Whether this process is the chief (its KERASTUNER_TUNER_ID contains "chief")."""
    return _dist_utils.is_chief_oracle()


class OracleInternals:
    """Atomic state files, one write per running trial, cheap updates, a reload that never reruns an ended trial."""

    @keras_tuner.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        """keras-tuner's `update_trial`, recording each value in O(1)."""
        trial = self.trials[trial_id]
        self._check_objective_found(metrics)
        for name, value in metrics.items():
            if not trial.metrics.exists(name):
                trial.metrics.register(
                    name, direction=self.objective.direction if name == self.objective.name else None
                )
            trial.metrics.metrics[name].update(float(value), step=step)
        self._save_trial(trial)
        return trial

    def save(self):
        write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        if trial.status == TrialStatus.RUNNING and os.path.exists(path):
            return  # update_trial: the metrics of a running trial live in memory until it ends
        write_json(path, trial.get_state())

    def set_state(self, state):
        """Reload the saved state, counting a trial whose trial.json says it ended as ended.

        keras-tuner's `end_trial` writes trial.json, then oracle.json, and only then
        drops the trial from `ongoing_trials`; on reload every ongoing trial is queued
        to run again. A search killed in that window would run a finished trial twice.
        """
        end_order, ongoing = list(state["end_order"]), {}
        for tuner_id, trial_id in state["ongoing_trials"].items():
            trial = self.trials.get(trial_id)
            ended = trial is not None and trial.status in (TrialStatus.COMPLETED, TrialStatus.FAILED)
            if ended and trial_id not in end_order:
                end_order.append(trial_id)
            elif not ended:
                ongoing[tuner_id] = trial_id
        super().set_state({**state, "end_order": end_order, "ongoing_trials": ongoing})


def retry_queue(oracle):
    """Trial ids the oracle will hand out again before new ones (interrupted trials after a reload)."""
    return list(oracle._retry_queue)


def build_hypermodel(tuner, hp):
    """The model `build(hp)` returns, as keras-tuner's Tuner builds it for a trial."""
    return tuner._build_hypermodel(hp)


def checkpoint_path(tuner, trial_id):
    """Where the tuner keeps a trial's weights (where `Tuner.load_model` looks for them)."""
    return tuner._get_checkpoint_fname(trial_id)


def tuner_state_path(tuner):
    return tuner._get_tuner_fname()
