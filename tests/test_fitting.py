"""fit for a population: every member equals the same model trained alone by `model.fit`, callbacks per member."""

import keras
import numpy as np
import pytest

from coursekit.data import load_dataset
from coursekit.fitting import EpochCallback, Member, fit_population

# (seed, learning rate, dropout rate): one architecture (Keras' own layers and Adam), three members.
CONFIGS = [(1, 0.01, 0.2), (2, 0.003, 0.1), (3, 0.03, 0.3)]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=500, validation_fraction=0.2)


def build(seed, learning_rate, rate, optimizer="adam"):
    """A user's model: Keras' layers, optimizer, loss and metric; its weights and dropout seeded by `seed`."""
    init = keras.initializers.GlorotUniform(seed=seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, use_bias=False, kernel_initializer=init),  # a bias before BN has no gradient
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(rate, seed=seed),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=init),
        ]
    )
    opt = (
        keras.optimizers.Adam(learning_rate)
        if optimizer == "adam"
        else keras.optimizers.SGD(learning_rate, momentum=0.9)
    )
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def alone(config, digits, **kwargs):
    model = build(*config)
    history = model.fit(
        digits.x_train, digits.y_train, batch_size=64, shuffle=False, verbose=0,
        validation_data=(digits.x_val, digits.y_val), **kwargs,
    )  # fmt: skip
    return model, history


def assert_same_logs(ours, theirs):
    assert ours.epoch == theirs.epoch
    assert sorted(ours.history) == sorted(theirs.history)
    for name, values in theirs.history.items():
        np.testing.assert_allclose(ours.history[name], values, rtol=2e-5, atol=2e-6, err_msg=name)


def test_members_equal_the_same_models_trained_alone_by_fit(digits):
    """Loss, accuracy, val_loss, val_accuracy per epoch (400 rows in batches of 64: a partial batch), weights, state."""
    members = [Member(f"m{i}", build(*config), seed=config[0]) for i, config in enumerate(CONFIGS)]
    histories = fit_population(
        members, digits.x_train, digits.y_train, batch_size=64, epochs=3, shuffle=False,
        validation_data=(digits.x_val, digits.y_val),
    )  # fmt: skip
    for member, config in zip(members, CONFIGS):
        model, history = alone(config, digits, epochs=3)
        assert_same_logs(histories[member.name], history)
        for ours, theirs in zip(member.model.variables, model.variables):  # BN statistics, dropout seeds
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5, err_msg=ours.path)
        for ours, theirs in zip(member.model.optimizer.variables, model.optimizer.variables):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5, err_msg=ours.path)


def test_early_stopping_stops_each_member_at_the_epoch_fit_stops_it(digits):
    """Each member its own EarlyStopping (restoring its best weights); the others go on without it."""
    configs = [(1, 0.05, 0.0, "sgd"), (2, 0.3, 0.0, "sgd"), (3, 0.001, 0.0, "sgd")]

    def stopper():
        return keras.callbacks.EarlyStopping("val_loss", patience=1, restore_best_weights=True)

    members = [Member(f"m{i}", build(*c), seed=c[0], callbacks=[stopper()]) for i, c in enumerate(configs)]
    histories = fit_population(
        members, digits.x_train, digits.y_train, batch_size=64, epochs=12, shuffle=False,
        validation_data=(digits.x_val, digits.y_val),
    )  # fmt: skip
    lengths = []
    for member, config in zip(members, configs):
        model, history = alone(config, digits, epochs=12, callbacks=[stopper()])
        assert_same_logs(histories[member.name], history)
        lengths.append(len(history.epoch))
        for ours, theirs in zip(member.model.weights, model.weights):  # the restored best weights
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5, err_msg=ours.path)
    assert min(lengths) < 12 and len(set(lengths)) > 1  # they stopped, at different epochs


def test_callbacks_the_engine_cannot_honour_are_named(digits):
    model = build(1, 0.01, 0.0)
    checkpoint = keras.callbacks.ModelCheckpoint("/tmp/never.keras")
    with pytest.raises(ValueError, match="ModelCheckpoint cannot be honoured"):
        fit_population([Member("m", model, callbacks=[checkpoint])], digits.x_train, digits.y_train)


def test_epoch_callbacks_see_each_member(digits):
    seen = {}

    class Record(EpochCallback):
        def on_epoch_end(self, epoch, logs=None):
            seen.setdefault(self.model.name, []).append(
                (epoch, round(logs["val_accuracy"], 6), len(self.model.get_weights()))
            )

    members = [Member(f"m{i}", build(*c), seed=c[0], callbacks=[Record()]) for i, c in enumerate(CONFIGS[:2])]
    histories = fit_population(
        members, digits.x_train, digits.y_train, epochs=2, initial_epoch=0, validation_split=0.25, batch_size=50
    )
    for member in members:
        history = histories[member.name]
        assert [(e, round(v, 6)) for e, v, _ in seen[member.model.name]] == list(
            zip(history.epoch, [round(v, 6) for v in history.history["val_accuracy"]])
        )
        assert seen[member.model.name][0][2] == len(member.model.weights)


def test_bad_input_is_one_clear_error(digits):
    uncompiled = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="not compiled"):
        fit_population([Member("m", uncompiled)], digits.x_train, digits.y_train)
    with pytest.raises(ValueError, match="rows"):
        fit_population([Member("m", build(1, 0.01, 0.0))], digits.x_train, digits.y_train[:10])
    with pytest.raises(ValueError, match="distinct names"):
        fit_population(
            [Member("m", build(1, 0.01, 0.0)), Member("m", build(2, 0.01, 0.0))], digits.x_train, digits.y_train
        )
