"""The keras-tuner search: narrowing oracle, report, resume after SIGKILL, chief + workers, mixed precision."""

import copy
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras_tuner
import numpy as np
import pytest
from conftest import ROOT
from keras_tuner.src.engine.trial import TrialStatus

from coursekit.results import write_json
from tuning import SearchSettings, run_search
from tuning.__main__ import main as tuning_main
from tuning.oracles import NarrowingOracle

SMOKE = dict(dataset="digits", trials=4, epochs=2, train_size=200, hidden_sizes=[20, 20])


def make_oracle(tmp_path, **kwargs):
    hp = keras_tuner.HyperParameters()
    hp.Float("learning_rate", 1e-6, 1e-2, sampling="log")
    hp.Choice("optimizer", ["SGD", "Adam"])
    oracle = NarrowingOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), hyperparameters=hp, seed=1, **kwargs
    )
    oracle._set_project_dir(str(tmp_path), "oracle")
    return oracle


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
    oracle = make_oracle(tmp_path, max_trials=4, rounds=2)
    first = oracle.create_trial("tuner0")
    finish(oracle, first)
    second = oracle.create_trial("tuner0")
    state_before_end = copy.deepcopy(oracle.get_state())
    finish(oracle, second)  # end_trial writes trial.json, then oracle.json, then pops the ongoing trial
    if killed == "before the pop":
        oracle.ongoing_trials["tuner0"] = second
        oracle.save()
    else:  # the new trial.json, the old oracle.json
        write_json(oracle._get_oracle_fname(), state_before_end)
    reloaded = make_oracle(tmp_path, max_trials=4, rounds=2)
    reloaded.reload()
    assert reloaded.end_order == [first.trial_id, second.trial_id]
    assert reloaded.ongoing_trials == {} and reloaded._retry_queue == []
    assert reloaded.create_trial("tuner0").trial_id not in (first.trial_id, second.trial_id)


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


def test_mixed_precision_applies_inside_every_trial(tmp_path):
    run_search(SearchSettings(oracle="random", mixed_precision=True, **SMOKE), tmp_path, verbose=0)
    assert [t["compute_bits"] for t in read_csv(tmp_path / "trials.csv")] == ["16.0"] * 4


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


def test_sigkill_then_rerun_resumes_without_repeating_finished_trials(tmp_path):
    oracle_file = tmp_path / "keras_tuner" / "search" / "oracle.json"
    process = subprocess.Popen(tuning_command(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            if len(json.loads(oracle_file.read_text())["end_order"]) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads(oracle_file.read_text())
    finished = list(state["end_order"])
    assert 2 <= len(finished) < 4, "the search ended before it could be killed"
    before = {
        t: json.loads((tmp_path / "keras_tuner" / "search" / f"trial_{t}" / "trial.json").read_text()) for t in finished
    }

    result = subprocess.run(tuning_command(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = {t["trial_id"]: t for t in read_csv(tmp_path / "trials.csv")}
    assert len(trials) == 4 and all(t["status"] == "COMPLETED" for t in trials.values())
    for trial_id, saved in before.items():  # kept as they were, not run again
        assert float(trials[trial_id]["learning_rate"]) == saved["hyperparameters"]["values"]["learning_rate"]
        observations = saved["metrics"]["metrics"]["val_accuracy"]["observations"]
        assert float(trials[trial_id]["final_val_accuracy"]) == observations[-1]["value"][0]
        assert (
            float(trials[trial_id]["duration_s"])
            == saved["metrics"]["metrics"]["duration_s"]["observations"][-1]["value"][0]
        )


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chief_and_two_workers_on_localhost(tmp_path):
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    command = tuning_command(tmp_path, trials=6, epochs=2, quiet=False)
    # Workers first: they wait for the chief's oracle (gRPC wait_for_ready), so both are
    # usually waiting when it starts handing out trials, not one of them still importing.
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
    assert "tuning: wrote" in chief_output
    assert len(read_csv(tmp_path / "trials.csv")) == 6
