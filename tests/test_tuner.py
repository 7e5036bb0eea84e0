"""The drop-in tuners with a user's own build(hp): keras-tuner's API, K trials at a time, fit's semantics."""

import glob
import os
import random

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine.trial import TrialStatus

from coursekit.data import load_dataset
from tuning import BayesianOptimization, GridSearch, Hyperband, Narrowing, RandomSearch
from tuning.tuner import seed_trial


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=400, validation_fraction=0.25)


def build(hp):
    """A user's hypermodel: Keras' layers, optimizer, loss and metric.

    The dropout layer has a seed (drawn after the trial's seeding), so that on PyTorch Keras'
    own `fit` draws its masks from the layer's generator too, as the engine does. SGD with
    momentum, not Adam: Adam divides each step by the root of the squared gradients, so a
    weight whose gradient is at round-off level takes a full step either way, and a trial
    trained alone and in a population (other matrix kernels) part after a few epochs.
    """
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(hp.Float("dropout", 0.05, 0.5), seed=random.randrange(2**31)),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(hp.Float("learning_rate", 1e-2, 3e-1, sampling="log"), momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def search(tuner, digits, **kwargs):
    kwargs = {"epochs": 3, "batch_size": 64, "verbose": 0, **kwargs}
    tuner.search(digits.x_train, digits.y_train, validation_data=(digits.x_val, digits.y_val), **kwargs)
    return tuner


def alone(tuner, trial, digits, epochs, execution=0, **kwargs):
    """The trial's model built with its seed and trained by `model.fit`, as keras-tuner would train it."""
    seed_trial(tuner.trial_seed(trial, execution))
    model = build(trial.hyperparameters)
    history = model.fit(
        digits.x_train, digits.y_train, validation_data=(digits.x_val, digits.y_val), epochs=epochs,
        batch_size=64, shuffle=False, verbose=0, **kwargs,
    )  # fmt: skip
    return model, history


def curve(trial, name):
    return [observation.mean() for observation in trial.metrics.get_history(name)]


def test_keras_tuners_api_k_trials_at_a_time(digits, tmp_path, capsys):
    tuner = search(RandomSearch(build, objective="val_accuracy", max_trials=6, population=3, seed=1,
                                directory=tmp_path, project_name="p"), digits)  # fmt: skip
    trials = tuner.oracle.get_best_trials(6)
    assert len(trials) == 6 and all(t.status == TrialStatus.COMPLETED for t in trials)
    assert [t.score for t in trials] == sorted((t.score for t in trials), reverse=True)
    frame = tuner.trials_dataframe()
    assert list(frame.columns) == ["trial_id", "status", "dropout", "learning_rate", "score", "best_step", "epochs",
                                   "seconds", "population"]  # fmt: skip
    assert len(frame) == 6 and set(frame["population"]) == {3} and set(frame["epochs"]) == {3}
    best = tuner.get_best_hyperparameters(1)[0]
    assert best.values == trials[0].hyperparameters.values
    model = tuner.get_best_models(1)[0]  # the best epoch's weights (keras-tuner's checkpoint)
    accuracy = model.evaluate(digits.x_val, digits.y_val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(trials[0].score, abs=1e-6)
    tuner.results_summary(2)
    assert "Score:" in capsys.readouterr().out
    assert not list(tmp_path.rglob("final_state.npz"))  # no oracle here continues a trial: no state is kept


def test_a_trial_equals_its_build_trained_alone_by_fit(digits, tmp_path):
    """Per-epoch loss and metrics of every trial (shuffle=False) and the epoch EarlyStopping stops at."""
    stopper = keras.callbacks.EarlyStopping("val_loss", patience=1)
    tuner = search(RandomSearch(build, objective="val_loss", max_trials=4, population=4, seed=2, directory=tmp_path),
                   digits, epochs=8, shuffle=False, callbacks=[stopper])  # fmt: skip
    for trial in tuner.oracle.trials.values():
        _, history = alone(tuner, trial, digits, 8, callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=1)])
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(curve(trial, name), history.history[name], rtol=2e-5, atol=2e-6, err_msg=name)
        assert trial.metrics.get_last_value("tuner/epochs") == len(history.epoch)


def test_executions_are_members_and_the_score_is_their_mean(digits, tmp_path):
    tuner = search(RandomSearch(build, objective="val_accuracy", max_trials=2, population=2, seed=3,
                                executions_per_trial=2, directory=tmp_path), digits, shuffle=False)  # fmt: skip
    for trial in tuner.oracle.trials.values():
        assert trial.metrics.get_last_value("tuner/population") == 4  # 2 trials x 2 executions in one population
        bests = [max(alone(tuner, trial, digits, 3, execution=e)[1].history["val_accuracy"]) for e in (0, 1)]
        assert trial.score == pytest.approx(np.mean(bests), abs=1e-6)


@pytest.mark.parametrize("tuner_class", [BayesianOptimization, GridSearch, Narrowing, Hyperband])
def test_every_oracle_through_the_api(digits, tmp_path, tuner_class):
    def grid_build(hp):
        hp.Choice("dropout", [0.1, 0.3])
        hp.Choice("learning_rate", [0.03, 0.1])
        return build(hp)

    if tuner_class is Hyperband:
        tuner = Hyperband(
            build, objective="val_accuracy", max_epochs=4, factor=2, population=8, seed=4, directory=tmp_path
        )
    elif tuner_class is GridSearch:
        tuner = GridSearch(grid_build, objective="val_accuracy", population=4, directory=tmp_path)
    else:
        tuner = tuner_class(build, objective="val_accuracy", max_trials=6, population=6, seed=4, directory=tmp_path)
    search(tuner, digits, epochs=2)
    trials = list(tuner.oracle.trials.values())
    assert trials and all(t.status == TrialStatus.COMPLETED for t in trials)
    assert max(t.metrics.get_last_value("tuner/population") for t in trials) > 1
    if tuner_class is GridSearch:
        assert sorted(tuple(t.hyperparameters.values.values()) for t in trials) == [
            (0.1, 0.03), (0.1, 0.1), (0.3, 0.03), (0.3, 0.1)
        ]  # fmt: skip


def test_hyperband_continues_its_survivors_where_they_stopped(digits, tmp_path):
    """A continued trial equals its hyperparameters trained without the interruption (same seed, data order)."""
    tuner = search(Hyperband(build, objective="val_loss", max_epochs=6, factor=3, population=9, seed=5,
                             directory=tmp_path), digits, shuffle=False)  # fmt: skip
    continued = [t for t in tuner.oracle.trials.values() if "tuner/trial_id" in t.hyperparameters.values]
    assert continued
    kept = {path.parent.name for path in tmp_path.rglob("final_state.npz")}  # trial_<id>: shorter than max_epochs
    assert {f"trial_{t.hyperparameters.values['tuner/trial_id']}" for t in continued} <= kept
    for trial in continued[:2]:
        epochs = trial.hyperparameters.values["tuner/epochs"]
        initial = trial.hyperparameters.values["tuner/initial_epoch"]
        assert [obs.step for obs in trial.metrics.get_history("val_loss")] == list(range(initial, epochs))
        _, history = alone(tuner, trial, digits, epochs)
        np.testing.assert_allclose(
            curve(trial, "val_loss"), history.history["val_loss"][initial:], rtol=5e-5, atol=5e-6
        )


def test_tensorboard_gets_every_trials_scalars_and_hparams(digits, tmp_path):
    tf = pytest.importorskip("tensorflow")
    log_dir = tmp_path / "logs"
    tuner = search(RandomSearch(build, objective="val_accuracy", max_trials=2, population=2, seed=6,
                                directory=tmp_path), digits, epochs=2,
                   callbacks=[keras.callbacks.TensorBoard(log_dir=str(log_dir))])  # fmt: skip
    for trial_id in tuner.oracle.trials:
        run = log_dir / trial_id / "execution0"
        plugins, tags = set(), set()
        for path in glob.glob(str(run / "**" / "events.out.tfevents.*"), recursive=True):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    tags.add((os.path.basename(os.path.dirname(path)), value.tag))
                    plugins.add(value.metadata.plugin_data.plugin_name)
        assert "hparams" in plugins
        assert {("train", "epoch_loss"), ("validation", "epoch_accuracy")} <= tags


class FitOverride(keras_tuner.HyperModel):
    def build(self, hp):
        return build(hp)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, **kwargs)


def test_what_cannot_be_vectorized_trains_one_at_a_time_said_once(digits, tmp_path, capsys):
    tuner = search(RandomSearch(FitOverride(), objective="val_accuracy", max_trials=2, population=2, seed=7,
                                directory=tmp_path), digits, epochs=2)  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("FitOverride overrides HyperModel.fit: the trials train one at a time") == 1
    assert all(t.status == TrialStatus.COMPLETED for t in tuner.oracle.trials.values())


def uncompiled(hp):
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])


@pytest.mark.parametrize(
    "make,kwargs,message",
    [
        (lambda d: RandomSearch(uncompiled, objective="val_accuracy", directory=d), {}, "not compiled"),
        (lambda d: RandomSearch(build, objective="val_auc", directory=d), {}, "'val_auc' is not computed by this search; it computes: loss, accuracy, val_loss, val_accuracy"),
        (lambda d: RandomSearch(build, objective="val_accuracy", directory=d), {"x": np.zeros((10, 7))}, "the data does not fit the model"),
        (lambda d: RandomSearch(build, objective="val_accuracy", directory=d), {"callbacks": [keras.callbacks.ModelCheckpoint("m.keras")]}, "ModelCheckpoint cannot be honoured"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_error(digits, tmp_path, make, kwargs, message):
    tuner = make(tmp_path)
    x = kwargs.pop("x", digits.x_train)
    y = digits.y_train[: len(x)]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as raised:
        tuner.search(x, y, validation_data=(digits.x_val, digits.y_val), epochs=1, verbose=0, **kwargs)
    assert "\n" not in str(raised.value)


def test_population_must_be_a_positive_integer(tmp_path):
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="population must be a positive integer"):
            RandomSearch(build, objective="val_accuracy", population=bad, directory=tmp_path)
