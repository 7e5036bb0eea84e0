"""Every lab: output files, typed settings, the command line, and the direction of the chapter's finding
(digits, and real MNIST when present)."""

import collections
import dataclasses
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import MNIST_DIR, ROOT

from coursekit import lab, reference, results
from labs import NAMES

HAVE_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists()
DATASETS = [
    "digits",
    pytest.param(
        f"idx:{MNIST_DIR}", marks=pytest.mark.skipif(not HAVE_MNIST, reason="real MNIST files absent"), id="mnist"
    ),
]


def run(name, tmp_path, preset="smoke", dataset="digits", seed=0, overrides=None, seeds=1, engine="auto"):
    done = lab.run(
        name,
        preset=preset,
        dataset=dataset,
        out=tmp_path,
        seed=seed,
        seeds=seeds,
        verbose=0,
        overrides=overrides,
        engine=engine,
    )
    rows = results.load(done.out_dir).to_dict(orient="records")
    config = json.loads((done.out_dir / "config.json").read_text())
    assert config["seed"] == seed and config["preset"] == preset
    assert config["seeds"] == list(range(seed, seed + seeds)) and {row["seed"] for row in rows} == set(config["seeds"])
    assert {"backend", "device", "versions", "wall_time_s", "settings"} <= set(config)
    assert config["figures"] and all((done.out_dir / f).stat().st_size > 10_000 for f in config["figures"])
    assert_summary_is_data(config["summary"])
    return rows, config


def assert_summary_is_data(summary):
    """config.json's summary: snake_case keys, and numbers (in lists and dicts), never prose."""

    def numbers(value):
        if isinstance(value, dict):
            return all(numbers(v) for v in value.values())
        if isinstance(value, list):
            return all(numbers(v) or isinstance(v, str) for v in value)  # lists may name things (diverged variants)
        return value is None or isinstance(value, (int, float))

    assert summary and all(re.fullmatch(r"[a-z0-9_]+", key) for key in summary), list(summary)
    assert all(numbers(value) for value in summary.values()), summary


def series(rows, metric):
    """{variant: values ordered by step} for one metric."""
    out = collections.defaultdict(list)
    for row in sorted(rows, key=lambda r: r["step"]):
        if row["metric"] == metric:
            out[row["variant"]].append(row["value"])
    return {k: np.array(v) for k, v in out.items()}


def test_optimizer_compare_naive_follows_the_course_formulas(tmp_path):
    rows, config = run("optimizer_compare_naive", tmp_path)
    x, y = series(rows, "x"), series(rows, "y")
    for name, lr in {"SGD": 0.95, "Momentum": 0.1, "AdaGrad": 1.5, "Adam": 0.3}.items():
        params, optimizer, path = {"w": np.array([-7.0, 2.0])}, reference.OPTIMIZERS[name](lr=lr), []
        for _ in range(30):
            optimizer.update(params, {"w": np.array([params["w"][0] / 10.0, 2.0 * params["w"][1]])})
            path.append(params["w"].copy())
        path = np.array(path)
        assert len(x[name]) == 31 and (x[name][0], y[name][0]) == (-7.0, 2.0)
        np.testing.assert_allclose(x[name][1:], path[:, 0], atol=2e-4)
        np.testing.assert_allclose(y[name][1:], path[:, 1], atol=2e-4)
    # The reference notebook's positions after 30 updates.
    expected = {"SGD": (-0.350, 0.085), "Momentum": (0.896, 0.088), "AdaGrad": (-0.120, 0.0), "Adam": (0.136, 0.318)}
    for name, (ex, ey) in expected.items():
        assert (round(x[name][-1], 3), round(abs(y[name][-1]), 3)) == (ex, ey)
    assert config["dataset"] is None


@pytest.mark.parametrize("dataset", DATASETS)
def test_optimizer_compare_mnist_sgd_is_slowest(tmp_path, dataset):
    rows, _ = run("optimizer_compare_mnist", tmp_path, dataset=dataset)
    loss = series(rows, "loss")
    assert set(loss) == {"SGD", "Momentum", "AdaGrad", "Adam"} and len(loss["SGD"]) == 300
    late = {name: values[-30:].mean() for name, values in loss.items()}
    assert late["SGD"] == max(late.values())
    assert late["SGD"] > 2 * max(v for k, v in late.items() if k != "SGD")


def test_weight_init_activation_histogram(tmp_path):
    rows, _ = run("weight_init_activation_histogram", tmp_path)
    std, mean = series(rows, "activation_std"), series(rows, "activation_mean")
    assert all(len(v) == 5 for v in std.values()) and len(std) == 12
    assert std["sigmoid/std=1"][-1] > 0.4  # mass piled at 0 and 1: saturated
    assert std["sigmoid/std=0.01"][-1] < 0.02 and abs(mean["sigmoid/std=0.01"][-1] - 0.5) < 0.05  # all ~0.5
    assert std["sigmoid/Xavier"][-1] > 3 * std["sigmoid/std=0.01"][-1]
    assert std["relu/std=0.01"][-1] < 1e-4  # collapses to 0
    assert std["relu/He"][-1] > 0.5 * std["relu/He"][0]  # He keeps the spread in every layer
    assert std["relu/Xavier"][-1] < 0.5 * std["relu/He"][-1]


@pytest.mark.parametrize("dataset", DATASETS)
def test_weight_init_compare_small_std_does_not_learn(tmp_path, dataset):
    rows, _ = run("weight_init_compare", tmp_path, dataset=dataset)
    late = {name: values[-40:].mean() for name, values in series(rows, "loss").items()}
    assert late["std=0.01"] > 2.25  # stays at ln(10)
    assert late["He"] < late["Xavier"] < late["std=0.01"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_batch_norm_wins_at_most_weight_scales(tmp_path, dataset):
    run("batch_norm_test", tmp_path, dataset=dataset)
    path = tmp_path / "batch_norm_test" / "results.csv"
    with open(path) as handle:
        assert handle.readline().strip() == "variant,weight_scale,seed,step,metric,value"
    by_scale = collections.defaultdict(dict)
    for row in _raw_rows(path):
        if row["metric"] == "train_accuracy" and row["step"] == "9":  # the last of 10 epochs
            by_scale[float(row["weight_scale"])][row["variant"]] = float(row["value"])
    assert len(by_scale) == 8
    wins = sum(scores["bn"] > scores["plain"] for scores in by_scale.values())
    assert wins >= 6


def _raw_rows(path):
    import csv

    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_batch_norm_gradient_check(tmp_path):
    rows, _ = run("batch_norm_gradient_check", tmp_path)
    errors = {row["variant"]: row["value"] for row in rows if row["metric"] == "max_relative_error"}
    assert len(errors) == 10  # 3 Dense (kernel, bias) + 2 BatchNorm (gamma, beta)
    assert max(errors.values()) < 1e-4


# The 8x8 digits (64 features) overfit at 100 training images the way MNIST does at 300;
# at 300 digits even the plain network's train/test gap is only about 6 points. The claims
# compare the baseline with the book's setting, so the runs trained beside them for the
# figure's slider are left out here (each variant trains exactly as it would alone).


def late_gap(rows, epochs=40):
    train, test = series(rows, "train_accuracy"), series(rows, "test_accuracy")
    return {name: float(np.mean(train[name][-epochs:] - test[name][-epochs:])) for name in train}


@pytest.mark.parametrize("dataset", DATASETS)
def test_weight_decay_narrows_the_gap(tmp_path, dataset):
    overrides = {"other_lambdas": ()}  # the book's 300 images: 100 digits fitted to 0.96 in some seeds
    rows, _ = run("overfit_weight_decay", tmp_path, preset="full", dataset=dataset, overrides=overrides)
    gap, train = late_gap(rows), series(rows, "train_accuracy")
    assert len(train["baseline"]) == 201 and train["baseline"].max() >= 0.99  # the plain net fits its images
    assert gap["lambda=0.1"] < gap["baseline"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_dropout_narrows_the_gap(tmp_path, dataset):
    overrides = {
        "other_rates": (),
        **({"train_size": 100} if dataset == "digits" else {}),
    }  # 300 digits: too small a gap
    rows, _ = run("overfit_dropout", tmp_path, preset="full", dataset=dataset, overrides=overrides)
    gap, train = late_gap(rows), series(rows, "train_accuracy")
    assert len(train["baseline"]) == 301 and train["baseline"].max() >= 0.99
    assert gap["dropout=0.2"] < gap["baseline"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_hyperparameter_search_prefers_learning_rates_near_1e_2(tmp_path, dataset):
    _, config = run("hyperparameter_optimization", tmp_path, dataset=dataset)
    with open(tmp_path / "hyperparameter_optimization" / "search" / "trials.csv") as handle:
        trials = list(__import__("csv").DictReader(handle))
    assert len(trials) == 12 and all(t["status"] == "COMPLETED" for t in trials)
    lrs = np.log10([float(t["learning_rate"]) for t in trials])
    val = np.array([float(t["final_val_accuracy"]) for t in trials])
    assert lrs[np.argmax(val)] > -3  # the best trial's learning rate is in the top decade
    # Trials with large learning rates learn; those below 1e-4 stay near chance (0.1).
    assert val[lrs > -3].mean() > val[lrs < -4].mean() + 0.05
    assert config["summary"]["test_accuracy_of_best"] > 0
    assert config["search"]["settings"]["trials"] == 12 and config["search"]["summary"]["completed"] == 12
    # The range test chose the narrowing search's learning-rate range; the lesson compares the two.
    summary = config["summary"]
    low, high = summary["lr_range_test"]["search_range"]
    assert 1e-6 < summary["lr_range_test"]["suggestion"] < 10 and low < high
    folder = tmp_path / "hyperparameter_optimization"
    narrowing = results.load(folder / "narrowing" / "trials.csv")
    assert len(narrowing) == 8 and sorted(set(narrowing["round"])) == [0, 1]
    assert (low * 0.999 <= narrowing["learning_rate"]).all() and (narrowing["learning_rate"] <= high * 1.001).all()
    lo, hi = summary["narrowing"]["good_learning_rates"]
    assert summary["narrowing"]["suggestion_within"] == (lo <= summary["lr_range_test"]["suggestion"] <= hi)
    assert {"lr_range_test.png", "learning_rates.png"} <= set(config["figures"])
    assert (folder / "search" / "narrowing.png").stat().st_size > 10_000
    assert (folder / "narrowing" / "narrowing.png").stat().st_size > 10_000
    assert isinstance(summary["edge_warnings"], list)
    curve = [row for row in _raw_rows(folder / "results.csv") if row["variant"] == "lr_range_test"]
    assert len(curve) == 3 * summary["lr_range_test"]["batches"]


# Each training lab, shortened, over 2 seeds (so variants of one architecture form populations),
# trained as populations (the default engine) and one variant after the other (fused, each
# bit for bit as alone): the losses agree to float32 round-off (as training compounds it), the
# accuracies to one example.
SHORT_RUNS = {
    "optimizer_compare_mnist": {"iterations": 30},
    "weight_init_compare": {"iterations": 30},
    "batch_norm_test": {"epochs": 2},
    "overfit_weight_decay": {"epochs": 3},
    "overfit_dropout": {"epochs": 3},
}


@pytest.mark.parametrize("name", list(SHORT_RUNS))
def test_a_lab_trained_as_populations_equals_its_variants_trained_one_at_a_time(tmp_path, name):
    runs = {}
    for engine in ("fused", "auto"):
        done = lab.run(
            name,
            preset="smoke",
            dataset="digits",
            out=tmp_path / engine,
            seeds=2,
            verbose=0,
            overrides=SHORT_RUNS[name],
            engine=engine,
        )
        assert json.loads((done.out_dir / "config.json").read_text())["engine"] == engine
        runs[engine] = results.load(done.out_dir)
    keys = [column for column in runs["fused"].columns if column != "value"]
    both = runs["fused"].merge(runs["auto"], on=keys, suffixes=("_alone", "_population"), validate="one_to_one")
    assert len(both) == len(runs["fused"]) == len(runs["auto"]) > 0
    losses = both[both.metric == "loss"]
    accuracies = both[both.metric.str.endswith("accuracy")]
    assert len(losses) + len(accuracies) > 0
    # Round-off, then what training makes of it: in the first 5 updates every variant agrees to
    # 1e-4; later, AdaGrad and Adam (whose early steps are about lr * sign(gradient) for every
    # weight) part faster: the fused run itself moves 12% in 30 steps of AdaGrad when its inputs
    # move by one ulp (TensorFlow, measured); SGD and Momentum stay within 1e-3.
    early = losses.step <= 5
    adaptive = losses.variant.str.startswith(("AdaGrad", "Adam"))
    for part, rtol in ((losses[early], 1e-4), (losses[~adaptive], 1e-3)):
        np.testing.assert_allclose(part.value_population, part.value_alone, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(accuracies.value_population, accuracies.value_alone, atol=1.01 / 300)


def test_several_seeds_repeat_each_seed_exactly_and_state_the_claims_over_them(tmp_path):
    """`--seeds 2`: each seed's variants compute what a one-seed run with that seed computes: bit for bit one
    variant after the other (`engine="fused"`), within float32 round-off as populations (the default: a
    population of 2 seeds sums in another order than one of 1: 2e-7 relative at step 3 on JAX, which
    400 SGD steps grow past 1e-5; the per-lab test above bounds the same)."""
    for engine, rtol in (("fused", 0), ("auto", 1e-3)):
        both, config = run("weight_init_compare", tmp_path / f"both-{engine}", seeds=2, engine=engine)
        for seed in (0, 1):
            alone, _ = run("weight_init_compare", tmp_path / f"seed{seed}-{engine}", seed=seed, engine=engine)
            ours = [row for row in both if row["seed"] == seed]
            assert [{**row, "value": None} for row in ours] == [{**row, "value": None} for row in alone]
            np.testing.assert_allclose([r["value"] for r in ours], [r["value"] for r in alone], rtol=rtol, atol=0)
    over = config["summary"]["over_seeds"]
    assert over["std_0_01_stays_at_ln_10"]["seeds"] == 2 and over["he_below_xavier"]["holds_in"] == 2
    assert set(over["he_below_xavier"]["per_seed"]) == {"0", "1"}


def test_a_claim_is_stated_over_the_seeds():
    claim = results.Claim({0: True, 1: True, 2: False}, {0: 14, 1: 13, 2: 15})
    assert str(claim) == "in 2 of 3 seeds; 13 to 15" and claim.typical == "14"
    assert f"BatchNorm ends higher at {claim.typical} of 16 scales {claim}" == (
        "BatchNorm ends higher at 14 of 16 scales in 2 of 3 seeds; 13 to 15"
    )
    one = results.Claim({0: True}, {0: 0.25}, fmt="{:.2f}")
    assert str(one) == "in 1 of 1 seed" and one.typical == "0.25" and one.spread == ""
    assert one.to_dict() == {"seeds": 1, "holds_in": 1, "per_seed": {0: 0.25}}


def test_a_bad_number_of_seeds_is_one_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="seeds must be a positive integer; received seeds=0"):
        lab.run("weight_init_compare", seeds=0)
    monkeypatch.setenv("COURSEKIT_SEEDS", "three")
    with pytest.raises(ValueError, match="COURSEKIT_SEEDS must be a positive integer; received 'three'"):
        lab._notebook_options()
    monkeypatch.setenv("COURSEKIT_SEEDS", "3")
    assert lab._notebook_options().seeds == 3


def _report_oracle(ranges):
    import keras_tuner

    space = keras_tuner.HyperParameters()
    for name, (low, high) in ranges.items():
        space.Float(name, low, high, sampling="log")
    return type("Oracle", (), {"get_space": lambda self: space})()


def test_the_report_warns_when_the_best_trials_lie_at_the_edge_of_a_range():
    from tuning.report import edge_warnings, edges

    oracle = _report_oracle({"learning_rate": (1e-6, 1e-2), "weight_decay": (1e-8, 1e-4)})
    rng = np.random.default_rng(0)
    rows = []
    for index in range(40):  # accuracy grows with the learning rate; weight decay does not matter
        lr, wd = 10 ** rng.uniform(-6, -2), 10 ** rng.uniform(-8, -4)
        accuracy = 0.1 + 0.2 * (np.log10(lr) + 6)
        rows.append(
            {
                "trial_id": f"{index:02d}",
                "status": "COMPLETED",
                "final_val_accuracy": accuracy,
                "learning_rate": lr,
                "weight_decay": wd,
            }
        )
    [found] = edges(oracle, rows)
    assert found["name"] == "learning_rate" and found["side"] == "upper" and found["of"] == 4 and found["near"] >= 2
    [warning] = edge_warnings(oracle, rows)
    assert warning.startswith("best trials at the edge of the learning_rate range [1e-06, 0.01]: widen it (")
    for row in rows:  # the good values inside the range: no warning
        row["final_val_accuracy"] = 1 - abs(np.log10(row["learning_rate"]) + 4)
    assert edge_warnings(oracle, rows) == []
    for row in rows:  # ... or at its lower edge
        row["final_val_accuracy"] = -np.log10(row["learning_rate"])
    assert [e["side"] for e in edges(oracle, rows)] == ["lower"]


def test_the_command_line_says_so(monkeypatch, capsys):
    import tuning.__main__ as command
    import tuning.run

    warning = "best trials at the edge of the learning_rate range [1e-06, 0.01]: widen it (...)"
    monkeypatch.setattr(tuning.run, "run_search", lambda *args, **kwargs: ({"edge warnings": [warning]}, None))
    monkeypatch.setattr(command.gc, "freeze", lambda: None)  # not in the test process
    assert command.main(["--preset", "smoke", "--dataset", "digits"]) == 0
    assert f"tuning: {warning}\n" in capsys.readouterr().out


def test_settings_are_typed_and_the_smoke_preset_derives_from_the_full_one(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Example(lab.Settings):
        epochs: int = 20
        hidden_sizes: tuple = (100, 100)

    made = lab.presets(Example(), epochs=2)
    assert made["smoke"] == Example(epochs=2, hidden_sizes=(100, 100)) and made["full"].epochs == 20
    with pytest.raises(ValueError, match="unknown setting.*epoch.*valid: epochs, hidden_sizes"):
        Example().replace(epoch=3)
    with pytest.raises(ValueError, match="unknown setting.*learning_rat"):
        run("overfit_dropout", tmp_path, overrides={"learning_rat": 0.1})


def test_labs_listing_names_every_lab():
    result = subprocess.run([sys.executable, "-m", "labs"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for name in NAMES:
        assert name in result.stdout


@pytest.mark.parametrize(
    "command,message",
    [
        (["labs.overfit_dropout", "--dataset", "cifar"], "overfit_dropout: error: Unknown dataset 'cifar'"),
        (["labs.batch_norm_test", "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
        (
            ["labs.weight_init_compare", "--dataset", "idx:/nowhere"],
            "weight_init_compare: error: idx dataset folder not found",
        ),
        (["labs", "all", "--seed", "-1"], "argument --seed: expected a non-negative integer, not '-1'"),
        (["labs.batch_norm_test", "--seeds", "0"], "argument --seeds: expected a positive integer, not '0'"),
        (["labs", "nonsense"], "labs: error: unknown lab 'nonsense'"),
        (
            ["tuning", "--trials", "0"],
            "python -m tuning: error: argument --trials: expected a positive integer, not '0'",
        ),
    ],
)
def test_command_line_errors_are_exactly_one_line(tmp_path, command, message):
    result = subprocess.run(
        [sys.executable, "-m", *command, "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_MNIST, reason="real MNIST files absent")
def test_full_presets_reproduce_the_reference_findings(tmp_path):
    """`pytest -m slow`: the reference scale (about 10 minutes on 2 cores with TensorFlow)."""
    dataset = f"idx:{MNIST_DIR}"
    rows, _ = run("optimizer_compare_mnist", tmp_path, preset="full", dataset=dataset)
    late = {name: values[-200:].mean() for name, values in series(rows, "loss").items()}
    assert late["SGD"] == max(late.values())
    run("batch_norm_test", tmp_path, preset="full", dataset=dataset)
    by_scale = collections.defaultdict(dict)
    for row in _raw_rows(tmp_path / "batch_norm_test" / "results.csv"):
        if row["metric"] == "train_accuracy" and row["step"] == "19":
            by_scale[float(row["weight_scale"])][row["variant"]] = float(row["value"])
    assert sum(s["bn"] > s["plain"] for s in by_scale.values()) >= 12  # the reference: 14 of 16
    _, config = run("hyperparameter_optimization", tmp_path, preset="full", dataset=dataset)
    low, high = config["summary"]["learning_rate_range_of_those"]
    assert 1e-3 < low and high <= 1e-2


def test_a_lab_runs_with_a_student_implementation(tmp_path):
    folder = tmp_path / "impl" / "coursekit"
    folder.mkdir(parents=True)
    for name in ("optimizers.py", "initializers.py", "layers.py", "regularizers.py"):
        shutil.copy(ROOT / "coursekit" / name, folder / name)
    text = (folder / "optimizers.py").read_text()
    old = "self.assign_sub(variable, ops.multiply(gradient, lr))"
    (folder / "optimizers.py").write_text(
        text.replace(old, "self.assign_sub(variable, ops.multiply(gradient, 0.5 * lr))")
    )
    command = [sys.executable, "-m", "labs.optimizer_compare_naive", "--implementation", str(folder.parent)]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((tmp_path / "out" / "optimizer_compare_naive" / "config.json").read_text())
    assert config["implementation"] == str(folder.parent)
    assert config["summary"]["final_position"]["SGD"] != [-0.3504, 0.0848]  # the half-speed SGD moved less
    assert config["summary"]["final_position"]["Adam"] == [0.136, 0.3182]
