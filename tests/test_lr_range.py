"""The learning-rate range test: the schedule, per-batch losses, divergence, restored state, suggestions, errors."""

import math

import keras
import numpy as np
import pandas as pd
import pytest

from coursekit import data, optimizers
from coursekit.lr_range import RangeTest, lr_range_test, suggest
from coursekit.models import classification_loss, multilayer_net


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", train_size=400, seed=0)


def compiled_net(dataset, **kwargs):
    model = multilayer_net(dataset.num_features, [32, 32], seed=0, **kwargs)
    model.compile(optimizers.SGD(0.01), classification_loss())
    return model


def test_the_learning_rate_grows_exponentially_and_the_run_stops_when_the_loss_diverges(digits):
    test = lr_range_test(compiled_net(digits), digits.x_train, digits.y_train, end_lr=1e3, steps=80, batch_size=50)
    frame = test.frame
    assert list(frame.columns) == ["learning_rate", "loss", "smoothed_loss"]
    ratios = frame["learning_rate"].to_numpy()[1:] / frame["learning_rate"].to_numpy()[:-1]
    np.testing.assert_allclose(ratios, (1e3 / 1e-6) ** (1 / 79), rtol=1e-9)
    assert frame["learning_rate"].iloc[0] == pytest.approx(1e-6)
    assert len(frame) < 80 and ("diverged" in test.stopped or "not finite" in test.stopped)  # SGD blows up
    smoothed = frame["smoothed_loss"].to_numpy()
    assert smoothed[-1] > 4 * smoothed.min() or not math.isfinite(frame["loss"].iloc[-1])
    # The bias-corrected moving average of the module docstring, beta 0.9.
    average, expected = 0.0, []
    for i, loss in enumerate(frame["loss"]):
        average = 0.9 * average + 0.1 * loss
        expected.append(average / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(smoothed, expected, rtol=1e-12)
    assert 1e-6 <= test.suggestion <= 1e3 and test.rule == "steepest"
    low, high = test.search_range()
    assert low == pytest.approx(test.suggestion / 100) and high == frame["learning_rate"].iloc[-1]


def test_each_recorded_loss_is_the_loss_of_its_own_batch_not_a_running_mean(digits):
    """With learning rates too small to move the weights, each loss is the untrained model's loss on that batch."""
    model = compiled_net(digits, weight_decay=1e-3)  # penalties count, as in the training loss
    test = lr_range_test(model, digits.x_train, digits.y_train, start_lr=1e-12, end_lr=1e-11, steps=12, batch_size=50)
    rng = np.random.default_rng(0)  # the test's batch order: consecutive permutations from its seed
    order = np.concatenate([rng.permutation(400), rng.permutation(400)])
    loss = classification_loss()
    penalty = 0.5 * 1e-3 * sum(float(np.sum(v.numpy() ** 2)) for v in model.trainable_variables if "kernel" in v.path)
    for i, recorded in enumerate(test.frame["loss"]):
        rows = order[i * 50 : (i + 1) * 50]
        x, y = digits.x_train[rows], digits.y_train[rows]
        expected = float(loss(y, model(x, training=True))) + penalty
        assert recorded == pytest.approx(expected, rel=1e-4)
    assert test.frame["loss"].std() > 0.01  # batches differ: no mean over them


def test_the_model_and_its_optimizer_are_restored(digits):
    model = multilayer_net(digits.num_features, [32, 32], batch_norm=True, dropout_rate=0.2, seed=0)
    model.compile(optimizers.Momentum(0.05), classification_loss(), metrics=["accuracy"])
    model.train_on_batch(digits.x_train[:50], digits.y_train[:50])  # optimizer state that must survive
    before = [v.numpy().copy() for v in model.variables]
    state = [v.numpy().copy() for v in model.optimizer.variables]
    test = lr_range_test(model, digits.x_train, digits.y_train, steps=40, batch_size=50)
    assert len(test.frame) > 5
    for variable, value in zip(model.variables, before):  # weights, BatchNorm statistics, dropout seed state
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    for variable, value in zip(model.optimizer.variables, state):  # iterations, learning rate, velocities
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.05)


def test_an_unbuilt_optimizer_ends_as_it_began(digits):
    model = compiled_net(digits)
    lr_range_test(model, digits.x_train, digits.y_train, steps=10, batch_size=50)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)


def test_the_suggestions_follow_their_rules():
    lr = np.logspace(-6, 1, 71)
    # A loss that falls fastest at lr = 1e-2 (a logistic step in log lr) and has its minimum at 1e-1.
    curve = 2 - 1.0 / (1 + np.exp(-4 * (np.log10(lr) + 2))) + np.where(lr > 0.1, 50 * (np.log10(lr) + 1) ** 2, 0)
    frame = pd.DataFrame({"learning_rate": lr, "loss": curve, "smoothed_loss": curve})
    found = suggest(frame)
    assert found["steepest"] == pytest.approx(1e-2, rel=0.05)
    assert found["minimum/10"] == pytest.approx(1e-2, rel=0.05)  # lr at the minimum: 1e-1
    flat = suggest(frame.assign(smoothed_loss=np.linspace(1, 3, 71)))  # the loss never falls
    assert all(math.isnan(value) for value in flat.values())
    test = RangeTest(frame.assign(smoothed_loss=np.linspace(1, 3, 71)), flat, "steepest", "reached end_lr=10", {})
    with pytest.raises(ValueError, match="no suggestion"):
        test.search_range()


def test_the_figure_and_the_summary(digits, tmp_path):
    test = lr_range_test(
        compiled_net(digits), digits.x_train, digits.y_train, steps=60, batch_size=50, rule="minimum/10"
    )
    assert test.suggestion == test.suggestions["minimum/10"]
    png = test.figure()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert test.figure(tmp_path / "lr.png").stat().st_size > 10_000
    summary = test.summary()
    assert summary["batches"] == len(test.frame) and summary["rule"] == "minimum/10"
    rows = test.rows()
    assert len(rows) == 3 * len(test.frame) and {r["metric"] for r in rows} == {
        "learning_rate",
        "loss",
        "smoothed_loss",
    }


@pytest.mark.parametrize(
    "change,message",
    [
        ({"steps": 2}, "`steps` must be in"),
        ({"steps": 10.0}, "`steps` must be an integer"),
        ({"start_lr": 0.0}, "`start_lr` must be in"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "start_lr must be below end_lr"),
        ({"batch_size": 1000}, "larger than the 400 rows"),
        ({"rule": "valley"}, "Unknown rule 'valley'"),
        ({"beta": 1.0}, "`beta` must be in"),
        ({"divergence": "4"}, "`divergence` must be a number"),
    ],
)
def test_bad_arguments_are_one_clear_error(digits, change, message):
    with pytest.raises(ValueError, match=message):
        lr_range_test(compiled_net(digits), digits.x_train, digits.y_train, **change)


def test_the_model_must_be_compiled_with_a_settable_learning_rate(digits):
    model = multilayer_net(digits.num_features, [8], seed=0)
    with pytest.raises(ValueError, match="needs a compiled model"):
        lr_range_test(model, digits.x_train, digits.y_train)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model.compile(keras.optimizers.SGD(schedule), classification_loss())
    with pytest.raises(ValueError, match="not a schedule"):
        lr_range_test(model, digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="x has 400 rows but y has 3"):
        lr_range_test(compiled_net(digits), digits.x_train, digits.y_train[:3])
