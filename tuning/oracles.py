"""keras-tuner oracles for the chapter's search, including the narrowing search it advises.

Every oracle here:
- scores a trial as the tuner computed its score (`tuning.tuner`: the executions' mean of
  their best, or final, epoch; reported as the metric "tuner/score"), else as keras-tuner does
  (the best value of the objective),
- writes its state and trial files atomically (temporary file + rename), so a
  search killed at any instant, even by SIGKILL, reloads and resumes, and on
  reload never runs again a trial whose own file says it ended
  (`tuning.internals.OracleInternals`),
- hands trials to a tuner that asks for several at once (a population, one
  `create_trial` per member under the sub-ids "TUNER/0", "TUNER/1", ...): as many
  as it can before it must wait for results (IDLE), and
- with `workers=N` (the chief of a distributed search), hands out nothing until N
  workers have asked, and gives a worker a second trial only once every worker
  has one, so each of the N workers takes part whichever connects first.
"""

import math
import random

import keras_tuner
from keras_tuner.engine.hyperparameters import Float, Int
from keras_tuner.engine.trial import Trial, TrialStatus

from tuning.internals import OracleInternals

ORACLES = ("random", "narrowing", "bayesian", "hyperband")  # the chapter's command line


def worker_of(tuner_id):
    """The worker behind a population member's sub-id: "tuner0/3" -> "tuner0"."""
    return tuner_id.split("/")[0]


class CourseOracleMixin(OracleInternals):
    """The tuner's scores, atomic files, and the start gate for `workers`; mixed into each oracle class.

    Args:
        workers: The number of workers a distributed search waits for (on the chief).
            Defaults to `None` (no gate).
    """

    def __init__(self, *args, workers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.workers = workers
        self._asked, self._served = set(), set()  # workers that asked / that were handed a trial

    def score_trial(self, trial):
        if trial.metrics.exists("tuner/score"):
            trial.score = trial.metrics.get_last_value("tuner/score")
            trial.best_step = int(trial.metrics.get_last_value("tuner/best_step"))
        else:
            super().score_trial(trial)

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        if self.workers and tuner_id not in self.ongoing_trials and not self._may_start(worker_of(tuner_id)):
            return Trial(self.get_space(), status=TrialStatus.IDLE)
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.RUNNING:
            self._served.add(worker_of(tuner_id))
        return trial

    def _may_start(self, worker):
        """Until each of the `workers` has asked, and then has a trial, a worker waits or takes only one."""
        self._asked.add(worker)
        served = self._served
        return len(self._asked) >= self.workers and (worker not in served or len(served) >= self.workers)


class RandomOracle(CourseOracleMixin, keras_tuner.oracles.RandomSearchOracle):
    """Random search: every trial samples each hyperparameter in its declared range."""


class BayesianOracle(CourseOracleMixin, keras_tuner.oracles.BayesianOptimizationOracle):
    """Gaussian-process Bayesian optimization (keras-tuner's), in batches.

    The first `num_initial_points` trials (default 3 per hyperparameter, at least 3, as
    keras-tuner) are random and go out as one batch; the oracle then waits (IDLE) until
    they have ended, so that the Gaussian process starts from all of them. After that each
    trial is keras-tuner's own choice, which already allows for trials still running: it
    fits them with a pessimistic guess (predicted mean plus one standard deviation of the
    loss), steering the next pick away from them. A batch of K therefore explores K points
    spread by those guesses; the smaller K, the closer to sequential Bayesian optimization.
    """

    def populate_space(self, trial_id):
        initial = self.num_initial_points or max(3 * len(self.hyperparameters.space), 3)
        ended = sum(t.status != TrialStatus.RUNNING for t in self.trials.values())
        if ended < initial <= len(self.trials):
            return {"status": TrialStatus.IDLE, "values": None}
        return super().populate_space(trial_id)


class GridOracle(CourseOracleMixin, keras_tuner.oracles.GridSearchOracle):
    """Grid search (keras-tuner's): every combination of the values, in order."""


class HyperbandOracle(CourseOracleMixin, keras_tuner.oracles.HyperbandOracle):
    """Hyperband (keras-tuner's): many short trials, the best trained longer.

    A batch takes the trials of a bracket's round up to the point where the next round
    needs their results (keras-tuner then starts the next bracket, or answers IDLE).
    """


class NarrowingOracle(CourseOracleMixin, keras_tuner.Oracle):
    """Random search in rounds, narrowing every numeric range after each round.

    The chapter's advice, made an algorithm. Round r samples each Float/Int
    hyperparameter uniformly in its own sampling scale (log for log) between the
    round's bounds, Choice/Boolean ones uniformly over their values. When every
    trial of a round has ended, each numeric range shrinks to the span of the
    round's `keep` best trials, widened by `margin` times the round's range on
    each side, and clipped to the declared bounds. Workers asking for a trial of
    the next round before the current one has ended are told to wait (IDLE).

    Bounds are kept in [0, 1] "probability" units of keras-tuner's
    `value_to_prob`/`prob_to_value`, which is exactly the hyperparameter's own
    sampling scale. The round of every trial and the bounds of every round are
    part of the saved state, so a resumed search continues in the right round.

    Args:
        objective, max_trials, seed, hyperparameters, ...: as `keras_tuner.Oracle`.
        rounds: Number of rounds. Defaults to ceil(max_trials / 20) (5 for 100 trials).
        keep: Best trials of a round that set the next range. Defaults to
            max(2, ceil(0.2 * trials per round)).
        margin: Widening on each side, as a fraction of the round's range.
            Defaults to `0.1`.
    """

    def __init__(self, objective=None, max_trials=100, rounds=None, keep=None, margin=0.1, **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        if not max_trials or max_trials < 1:
            raise ValueError(f"the narrowing search needs max_trials >= 1; received max_trials={max_trials!r}")
        self.rounds = int(rounds or math.ceil(max_trials / 20))
        if not 1 <= self.rounds <= max_trials:
            raise ValueError(f"rounds must be in [1, max_trials={max_trials}]; received rounds={rounds!r}")
        self.trials_per_round = math.ceil(max_trials / self.rounds)
        self.keep = int(keep or max(2, math.ceil(0.2 * self.trials_per_round)))
        if self.keep < 1:
            raise ValueError(f"keep must be >= 1; received keep={keep!r}")
        if not 0 <= margin <= 1:
            raise ValueError(f"margin must be in [0, 1]; received margin={margin!r}")
        self.margin = float(margin)
        self.round_bounds = []  # per round: {hp name: [low, high]} in probability units
        self.trial_rounds = {}  # trial id -> round

    # -- which round, and may it start? ------------------------------------------------

    def _round_of_next_trial(self):
        return len(self.trial_rounds) // self.trials_per_round

    def _round_has_ended(self, round_index):
        ids = [t for t, r in self.trial_rounds.items() if r == round_index]
        ended = (TrialStatus.COMPLETED, TrialStatus.FAILED)
        return all(self.trials[t].status in ended for t in ids)

    def populate_space(self, trial_id):
        round_index = self._round_of_next_trial()
        if round_index >= len(self.round_bounds):
            if round_index > 0 and not self._round_has_ended(round_index - 1):
                return {"status": TrialStatus.IDLE, "values": None}
            self.round_bounds.append(self._next_bounds(round_index))
        values = self._sample(self.round_bounds[round_index], trial_id)
        self.trial_rounds[trial_id] = round_index
        return {"status": TrialStatus.RUNNING, "values": values}

    # -- sampling and narrowing --------------------------------------------------------

    def _sample(self, bounds, trial_id):
        rng = random.Random(f"{self.seed}-{trial_id}")
        hps = keras_tuner.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            if hp.name in bounds:
                low, high = bounds[hp.name]
                hps.values[hp.name] = hp.prob_to_value(rng.uniform(low, high))
            else:
                hps.values[hp.name] = hp.random_sample(rng.randint(0, 2**31))
        return hps.values

    def _next_bounds(self, round_index):
        numeric = [hp for hp in self.hyperparameters.space if _is_numeric(hp)]
        if round_index == 0:
            return {hp.name: [0.0, 1.0] for hp in numeric}
        previous = self.round_bounds[round_index - 1]
        ranked = sorted(
            (
                self.trials[t]
                for t, r in self.trial_rounds.items()
                if r == round_index - 1 and self.trials[t].status == TrialStatus.COMPLETED
            ),
            key=lambda trial: trial.score,
            reverse=self.objective.direction == "max",
        )[: self.keep]
        if not ranked:
            return dict(previous)
        bounds = {}
        for hp in numeric:
            low, high = previous[hp.name]
            probs = [
                hp.value_to_prob(t.hyperparameters.values[hp.name])
                for t in ranked
                if hp.name in t.hyperparameters.values
            ]
            if not probs:
                bounds[hp.name] = [low, high]
                continue
            pad = self.margin * (high - low)
            bounds[hp.name] = [max(0.0, min(probs) - pad), min(1.0, max(probs) + pad)]
        return bounds

    def value_bounds(self, round_index):
        """The round's bounds in hyperparameter values: {name: (low, high)}."""
        by_name = {hp.name: hp for hp in self.hyperparameters.space}
        return {
            name: (by_name[name].prob_to_value(low), by_name[name].prob_to_value(high))
            for name, (low, high) in self.round_bounds[round_index].items()
        }

    # -- saved state ---------------------------------------------------------------------

    def get_state(self):
        state = super().get_state()
        state.update(
            {
                "rounds": self.rounds,
                "trials_per_round": self.trials_per_round,
                "keep": self.keep,
                "margin": self.margin,
                "round_bounds": self.round_bounds,
                "trial_rounds": self.trial_rounds,
            }
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        self.rounds, self.trials_per_round = state["rounds"], state["trials_per_round"]
        self.keep, self.margin = state["keep"], state["margin"]
        self.round_bounds = state["round_bounds"]
        self.trial_rounds = state["trial_rounds"]


def _is_numeric(hp):
    return isinstance(hp, (Float, Int))
