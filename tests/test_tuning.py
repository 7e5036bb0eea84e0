"""The keras-tuner search: oracles and their batches, report, resume after SIGKILL, chief + workers, internals."""

import copy
import csv
import importlib
import inspect
import json
import os
import socket
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
from conftest import ROOT
from keras_tuner.engine.trial import TrialStatus

from coursekit import runtime
from coursekit.results import write_json
from tuning import SearchSettings, internals, run_search
from tuning.__main__ import main as tuning_main
from tuning.oracles import BayesianOracle, HyperbandOracle, NarrowingOracle, RandomOracle
from tuning.search import build_model
from tuning.tuner import seed_trial

SMOKE = dict(dataset="digits", trials=4, epochs=2, train_size=200, hidden_sizes=[20, 20])


def make_oracle(tmp_path, cls=NarrowingOracle, **kwargs):
    hp = keras_tuner.HyperParameters()
    hp.Float("learning_rate", 1e-6, 1e-2, sampling="log")
    hp.Choice("optimizer", ["SGD", "Adam"])
    oracle = cls(objective=keras_tuner.Objective("val_accuracy", "max"), hyperparameters=hp, seed=1, **kwargs)
    oracle._set_project_dir(str(tmp_path), "oracle")
    return oracle


def take(oracle, k, tuner_id="tuner0"):
    """What the tuner does: ask under K sub-ids; the RUNNING trials and every answer's status."""
    answers = [oracle.create_trial(f"{tuner_id}/{i}") for i in range(k)]
    return [t for t in answers if t.status == TrialStatus.RUNNING], [t.status for t in answers]


def finish(oracle, trial):
    """Score a trial as the reference found it: best near learning rate 1e-2."""
    score = -abs(np.log10(trial.hyperparameters.values["learning_rate"]) + 2.2)
    oracle.update_trial(trial.trial_id, {"val_accuracy": score}, step=1)
    trial.status = TrialStatus.COMPLETED
    oracle.end_trial(trial)


def test_narrowing_oracle_shrinks_ranges_in_log_scale_within_bounds(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=30, rounds=3, keep=3)
    while (trial := oracle.create_trial("tuner0")).status == TrialStatus.RUNNING:
        finish(oracle, trial)
    assert len(oracle.trials) == 30 and oracle.trials_per_round == 10
    widths = [high - low for low, high in (b["learning_rate"] for b in oracle.round_bounds)]
    assert widths[0] == 1.0 and widths[1] < 0.6 and widths[2] < widths[1]
    assert "optimizer" not in oracle.round_bounds[1]  # choices are not narrowed
    values = {t: oracle.trials[t].hyperparameters.values["learning_rate"] for t in oracle.trials}
    assert all(1e-6 <= v <= 1e-2 for v in values.values())
    low, high = oracle.value_bounds(2)["learning_rate"]
    assert 1e-4 < low < 10**-2.2 < high <= 1e-2  # narrowed around the optimum, on a log scale
    assert [oracle.trial_rounds[t] for t in sorted(oracle.trials)] == [0] * 10 + [1] * 10 + [2] * 10


def test_workers_wait_at_the_end_of_a_round(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=4, rounds=2)
    first = [oracle.create_trial(f"tuner{i}") for i in range(2)]  # round 0 fully handed out
    assert oracle.create_trial("tuner2").status == TrialStatus.IDLE
    finish(oracle, first[0])
    assert oracle.create_trial("tuner2").status == TrialStatus.IDLE
    finish(oracle, first[1])
    assert oracle.create_trial("tuner2").status == TrialStatus.RUNNING


def test_round_state_survives_save_and_reload(tmp_path):
    oracle = make_oracle(tmp_path, max_trials=6, rounds=2)
    for _ in range(4):
        finish(oracle, oracle.create_trial("tuner0"))
    reloaded = make_oracle(tmp_path, max_trials=6, rounds=2)
    reloaded.reload()
    assert reloaded.round_bounds == oracle.round_bounds and reloaded.trial_rounds == oracle.trial_rounds
    trial = reloaded.create_trial("tuner0")
    assert reloaded.trial_rounds[trial.trial_id] == 1


@pytest.mark.parametrize("killed", ["before the pop", "before oracle.json"])
def test_a_trial_ended_just_before_a_kill_is_not_run_again(tmp_path, killed):
    oracle = make_oracle(tmp_path, max_trials=8, rounds=2)
    first, _ = take(oracle, 2)
    for trial in first:
        finish(oracle, trial)
    second, _ = take(oracle, 3)  # a population of 3 ongoing trials
    state_before_end = copy.deepcopy(oracle.get_state())
    finish(oracle, second[0])  # end_trial writes trial.json, then oracle.json, then pops the ongoing trial
    if killed == "before the pop":
        oracle.ongoing_trials["tuner0/0"] = second[0]
        oracle.save()
    else:  # the new trial.json, the old oracle.json
        write_json(oracle._get_oracle_fname(), state_before_end)
    reloaded = make_oracle(tmp_path, max_trials=8, rounds=2)
    reloaded.reload()
    ended = [t.trial_id for t in first] + [second[0].trial_id]
    assert reloaded.end_order == ended
    assert reloaded.ongoing_trials == {} and sorted(internals.retry_queue(reloaded)) == [t.trial_id for t in second[1:]]
    again, _ = take(reloaded, 3)  # the two interrupted trials first, then a new one
    assert sorted(t.trial_id for t in again[:2]) == [t.trial_id for t in second[1:]]
    assert not {t.trial_id for t in again} & set(ended)


def test_batches_go_as_far_as_each_oracle_allows(tmp_path):
    random_batch, _ = take(make_oracle(tmp_path / "r", RandomOracle, max_trials=30), 20)
    assert len(random_batch) == 20
    narrowing = make_oracle(tmp_path / "n", max_trials=30, rounds=3)
    batch, statuses = take(narrowing, 20)  # a round is 10 trials: the rest wait for its results
    assert len(batch) == 10 and statuses[10:] == [TrialStatus.IDLE] * 10
    bayesian = make_oracle(tmp_path / "b", BayesianOracle, max_trials=30)
    batch, statuses = take(bayesian, 20)  # 3 per hyperparameter random points, then IDLE until they end
    assert len(batch) == 6 and set(statuses[6:]) == {TrialStatus.IDLE}
    for trial in batch:
        finish(bayesian, trial)
    batch, _ = take(bayesian, 4)  # Gaussian-process choices, kept apart by the pending ones
    values = [t.hyperparameters.values["learning_rate"] for t in batch]
    assert len(batch) == 4 and len(set(values)) == 4
    hyperband = make_oracle(tmp_path / "h", HyperbandOracle, max_epochs=9, factor=3)
    batch, statuses = take(hyperband, 40)  # brackets' first rounds, until one needs results
    assert 0 < len(batch) < 40 and TrialStatus.IDLE in statuses
    assert len({t.hyperparameters.values["tuner/epochs"] for t in batch}) > 1  # trained in groups by length


def test_the_last_pass_stops_every_sub_id(tmp_path):
    """The chief of a distributed search exits once every tuner id it saw was told STOPPED."""
    oracle = make_oracle(tmp_path, RandomOracle, max_trials=3)
    batch, _ = take(oracle, 4)
    for trial in batch:
        finish(oracle, trial)
    assert take(oracle, 4) == ([], [TrialStatus.STOPPED] * 4)
    assert oracle.tuner_ids == set() and oracle.ongoing_trials == {}


def test_workers_gate_gives_every_worker_a_trial_whoever_asks_first(tmp_path):
    oracle = make_oracle(tmp_path, RandomOracle, max_trials=10, workers=2)
    assert take(oracle, 3, "tuner1")[1] == [TrialStatus.IDLE] * 3  # waits for the second worker
    first, _ = take(oracle, 3, "tuner0")  # one trial only, until every worker has one
    assert len(first) == 1
    second, _ = take(oracle, 3, "tuner1")
    assert len(second) == 3
    finish(oracle, first[0])
    assert len(take(oracle, 3, "tuner0")[0]) == 3  # then free for all


def test_bad_oracle_arguments():
    with pytest.raises(ValueError, match="rounds"):
        NarrowingOracle(objective="val_accuracy", max_trials=5, rounds=9)
    with pytest.raises(ValueError, match="margin"):
        NarrowingOracle(objective="val_accuracy", max_trials=5, margin=2.0)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--trials", "0"], "--trials: expected a positive integer, not '0'"),
        (["--oracle", "grid"], "--oracle: invalid choice: 'grid'"),
        (["--epochs", "many"], "--epochs: expected a positive integer, not 'many'"),
        (["--dataset", "nope", "--trials", "1"], "Unknown dataset 'nope'"),
        (["--optimizers", "SGD,Adamax", "--trials", "1"], "Unknown optimizer 'Adamax'"),
        (["--rounds", "9", "--trials", "3"], "rounds"),
    ],
)
def test_cli_bad_options_exit_with_one_line(tmp_path, capsys, argv, message):
    try:
        code = tuning_main([*argv, "--out", str(tmp_path)])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_search_report(tmp_path):
    summary, tuner = run_search(SearchSettings(oracle="narrowing", rounds=2, **SMOKE), tmp_path, verbose=0)
    trials = read_csv(tmp_path / "trials.csv")
    assert [t["round"] for t in trials] == ["0", "0", "1", "1"]
    assert {
        "learning_rate",
        "weight_decay",
        "final_val_accuracy",
        "best_val_accuracy",
        "final_train_accuracy",
        "duration_s",
    } <= set(trials[0])
    curves = read_csv(tmp_path / "results.csv")
    assert len(curves) == 4 * 2 * 2  # trials x epochs x {val, train}
    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert 0 <= best["test_accuracy"] <= 1 and best["test_examples"] == len(tuner.dataset.y_test)
    assert best["val_accuracy"] == max(float(t["final_val_accuracy"]) for t in trials)
    assert (tmp_path / "best_trials.png").exists() and json.loads((tmp_path / "config.json").read_text())["seed"] == 0
    assert summary["completed"] == 4


@pytest.mark.parametrize("oracle", ["bayesian", "hyperband"])
def test_keras_tuners_own_oracles_run_in_populations(tmp_path, oracle):
    summary, _ = run_search(SearchSettings(oracle=oracle, **{**SMOKE, "trials": 7, "epochs": 3}), tmp_path, verbose=0)
    trials = read_csv(tmp_path / "trials.csv")
    assert summary["completed"] == len(trials) >= 4 and all(t["status"] == "COMPLETED" for t in trials)
    assert max(float(t["population"]) for t in trials) > 1  # trained several at a time
    if oracle == "hyperband":  # brackets of different lengths, each trained for its own number of epochs
        assert len({t["epochs"] for t in trials}) > 1


def test_mixed_precision_applies_inside_every_trial(tmp_path):
    run_search(SearchSettings(oracle="random", mixed_precision=True, **SMOKE), tmp_path, verbose=0)
    assert [t["compute_bits"] for t in read_csv(tmp_path / "trials.csv")] == ["16"] * 4


def tuning_command(out, trials=4, epochs=3, quiet=True):
    command = [
        sys.executable,
        "-m",
        "tuning",
        "--preset",
        "smoke",
        "--dataset",
        "digits",
        "--out",
        str(out),
        "--trials",
        str(trials),
        "--epochs",
        str(epochs),
        "--rounds",
        "2",
        "--train-size",
        "200",
    ]
    return command + (["--quiet"] if quiet else [])


def trial_files(tmp_path):
    folder = tmp_path / "keras_tuner" / "search"
    return {p.parent.name[len("trial_") :]: json.loads(p.read_text()) for p in folder.glob("trial_*/trial.json")}


@pytest.mark.parametrize(
    "fault",
    [
        "population_trained:2",  # the second population trained, none of it reported: both its trials run again
        "trial_ended:3",  # the third trial ended, its population's other trial not: that one runs again
    ],
)
def test_sigkill_then_rerun_resumes_without_losing_or_repeating_trials(tmp_path, fault):
    """Kills at a chosen point (COURSEKIT_TUNING_FAULT), not when a polled file says so."""
    env = {**os.environ, "COURSEKIT_TUNING_FAULT": fault}  # 4 trials, populations of 2 (2 rounds)
    killed = subprocess.run(tuning_command(tmp_path), cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    before = {t: saved for t, saved in trial_files(tmp_path).items() if saved["status"] == "COMPLETED"}
    assert len(before) == (2 if fault.startswith("population") else 3)

    result = subprocess.run(tuning_command(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = {t["trial_id"]: t for t in read_csv(tmp_path / "trials.csv")}
    assert len(trials) == 4 and all(t["status"] == "COMPLETED" for t in trials.values())
    oracle = json.loads((tmp_path / "keras_tuner" / "search" / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == sorted(trials) and set(oracle["run_times"].values()) == {1}
    for trial_id, saved in before.items():  # kept as they were, not run again
        assert trial_files(tmp_path)[trial_id] == saved
        observations = saved["metrics"]["metrics"]["val_accuracy"]["observations"]
        assert float(trials[trial_id]["final_val_accuracy"]) == observations[-1]["value"][0]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chief_and_two_workers_on_localhost(tmp_path):
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    # The chief hands out trials once both workers have asked, a second one to a worker only
    # once each has one (--workers 2): both take part, whichever connects first.
    command = tuning_command(tmp_path, trials=6, epochs=2, quiet=False) + ["--workers", "2"]
    workers = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "KERASTUNER_TUNER_ID": f"tuner{i}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    chief = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**env, "KERASTUNER_TUNER_ID": "chief"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        outputs = [w.communicate(timeout=400)[0] for w in workers]
        chief_output = chief.communicate(timeout=120)[0]
    finally:
        for process in (chief, *workers):
            process.kill()
    assert all(w.returncode == 0 for w in workers) and chief.returncode == 0, chief_output[-2000:]
    ran = [sum(line.startswith(f"tuner{i}: trial ") for line in out.splitlines()) for i, out in enumerate(outputs)]
    assert sum(ran) == 6 and min(ran) >= 1, ran
    assert "population of" in outputs[0] + outputs[1]
    assert "tuning: wrote" in chief_output
    assert len(read_csv(tmp_path / "trials.csv")) == 6


def test_workers_option_needs_a_distributed_search(tmp_path):
    with pytest.raises(ValueError, match="workers=2 applies to a distributed search"):
        run_search(SearchSettings(workers=2, **SMOKE), tmp_path, verbose=0)


def test_importing_the_package_changes_no_global_state():
    code = "import os; before = dict(os.environ); import tuning; assert dict(os.environ) == before"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_the_keras_tuner_internals_the_search_relies_on_are_there():
    """Fails loudly when keras-tuner renames or drops what tuning/internals.py uses."""
    for owner, name in internals.USED:
        module_name, _, class_name = owner.rpartition(".")
        try:
            owner_object = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            owner_object = importlib.import_module(owner)
        if inspect.isclass(owner_object) and name not in dir(owner_object):  # an attribute set in __init__
            instance = owner_object.__new__(owner_object)
            owner_object.__init__(instance, **({"objective": "val_accuracy"} if "Oracle" in owner else {}))
            owner_object = instance
        assert hasattr(owner_object, name), f"keras-tuner {keras_tuner.__version__} has no {owner}.{name}"


def test_a_trial_seeded_for_the_search_builds_the_model_seed_everything_builds():
    settings = SearchSettings(max_dropout=0.5, batch_norm="on")
    hp = keras_tuner.HyperParameters()
    hp.Float("dropout", 0.0, 0.5, default=0.3)
    models = []
    for seed_function in (seed_trial, runtime.seed_everything):
        seed_function(7)
        models.append(build_model(hp, settings, 64, 10))
    assert any("seed_generator" in v.path for v in models[0].variables)  # dropout layers' seeds compared too
    for ours, theirs in zip(*(m.variables for m in models)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
