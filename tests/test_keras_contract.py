"""The Keras contract: each kit class beside the Keras built-in it stands for, at equal settings.

For every pair in the tables below the same inputs give the same outputs, the same state
(variables after each step, optimizer slots, moving statistics, regularization losses,
gradients), the same config for the keys both classes have, and names made the Keras way.
Where the course differs from Keras (defaults, Dropout's non-inverted variant, AdaGrad,
RMSprop) the kit is set to Keras' settings here; `test_optimizers.py` and `test_layers.py`
hold the course's own rules.
"""

import keras
import numpy as np
import pytest
from keras import ops

from coursekit import initializers, optimizers, regularizers
from coursekit.gradcheck import autodiff_gradients
from coursekit.layers import BatchNorm, Dropout


def as_numpy(x):
    return ops.convert_to_numpy(x)


def shared_config(ours, theirs):
    """The two configs restricted to the keys both have (the name aside: see the naming tests)."""
    ours, theirs = ours.get_config(), theirs.get_config()
    keys = (ours.keys() & theirs.keys()) - {"name"}
    return {key: ours[key] for key in keys}, {key: theirs[key] for key in keys}


def names_in_a_fresh_session(make):
    """The names of two unnamed instances made by `make`, in a fresh Keras session."""
    keras.backend.clear_session()
    return make().name, make().name


# --- optimizers --------------------------------------------------------------------------

# id: (the kit's optimizer, Keras' at equal settings, the kit's automatic name)
OPTIMIZERS = {
    "SGD": (lambda: optimizers.SGD(0.05), lambda: keras.optimizers.SGD(0.05), "sgd"),
    "Momentum": (
        lambda: optimizers.Momentum(0.05, momentum=0.8),
        lambda: keras.optimizers.SGD(0.05, momentum=0.8),
        "momentum",
    ),
    "Nesterov": (
        lambda: optimizers.Nesterov(0.05, momentum=0.8),
        lambda: keras.optimizers.SGD(0.05, momentum=0.8, nesterov=True),
        "nesterov",
    ),
    "Adam": (
        lambda: optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
        lambda: keras.optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
        "adam",
    ),
    "Adam-amsgrad": (
        lambda: optimizers.Adam(0.01, amsgrad=True),
        lambda: keras.optimizers.Adam(0.01, amsgrad=True),
        "adam",
    ),
    "Momentum-decay-clip-ema": (
        lambda: optimizers.Momentum(
            0.05, momentum=0.8, weight_decay=0.01, clipnorm=1.0, use_ema=True, ema_momentum=0.9
        ),
        lambda: keras.optimizers.SGD(
            0.05, momentum=0.8, weight_decay=0.01, clipnorm=1.0, use_ema=True, ema_momentum=0.9
        ),
        "momentum",
    ),
    "Adam-schedule-accumulation": (
        lambda: optimizers.Adam(
            keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=5, decay_rate=0.5),
            global_clipnorm=2.0,
            gradient_accumulation_steps=2,
        ),
        lambda: keras.optimizers.Adam(
            keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=5, decay_rate=0.5),
            global_clipnorm=2.0,
            gradient_accumulation_steps=2,
        ),
        "adam",
    ),
}


def apply_steps(optimizer, start, grads):
    """Apply each gradient list with `optimizer`; return (variables, optimizer variables) after each step."""
    variables = [keras.Variable(value) for value in start]
    history = []
    for step_grads in grads:
        optimizer.apply_gradients(zip([ops.convert_to_tensor(g) for g in step_grads], variables))
        history.append(([v.numpy().copy() for v in variables], [as_numpy(v).copy() for v in optimizer.variables]))
    return history


@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_optimizer_steps_and_state_equal_keras(rng, case):
    ours, theirs, _ = OPTIMIZERS[case]
    start = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    # Gradients of changing size, so that AMSGrad's running maximum differs from v.
    grads = [[(rng.normal(size=v.shape) * rng.uniform(0.1, 3)).astype("float32") for v in start] for _ in range(12)]
    for step, (got, want) in enumerate(zip(apply_steps(ours(), start, grads), apply_steps(theirs(), start, grads)), 1):
        (got_variables, got_state), (want_variables, want_state) = got, want
        for g, w in zip(got_variables, want_variables):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, err_msg=f"{case} step {step}")
        assert len(got_state) == len(want_state), case
        for g, w in zip(got_state, want_state):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, err_msg=f"{case} optimizer state, step {step}")


@pytest.mark.parametrize("case", ["SGD", "Nesterov", "Adam-amsgrad", "Momentum-decay-clip-ema"])
def test_optimizer_trains_a_model_as_keras_does(rng, case):
    """Through `fit`: a traced TensorFlow step, JAX's stateless apply, EMA finalized at the end."""
    ours, theirs, _ = OPTIMIZERS[case]
    x = rng.normal(size=(32, 5)).astype("float32")
    y = rng.normal(size=(32, 2)).astype("float32")

    def train(optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
        model.compile(optimizer, "mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights(), [as_numpy(v) for v in optimizer.variables]

    (got_weights, got_state), (want_weights, want_state) = train(ours()), train(theirs())
    for g, w in zip(got_weights + got_state, want_weights + want_state, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=case)


@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_optimizer_config_equals_keras_on_shared_keys_and_round_trips(case):
    ours, theirs, _ = OPTIMIZERS[case]
    got, want = shared_config(ours(), theirs())
    assert got == want
    assert {"learning_rate", "weight_decay", "clipnorm", "use_ema", "gradient_accumulation_steps"} <= got.keys()
    optimizer = ours()
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is type(optimizer)
    assert restored.get_config() == optimizer.get_config()


KERAS_VERSION = tuple(int(part) for part in keras.version().split(".")[:2])


@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_optimizer_names_made_the_keras_way(case):
    ours, theirs, name = OPTIMIZERS[case]
    assert names_in_a_fresh_session(ours) == (name, f"{name}_1")
    # SGD, Adam: the very names Keras gives its own (Keras 3.10 named two unnamed SGDs "SGD" and
    # "SGD"; the kit names them as later Keras does)
    if type(ours()).__name__ == type(theirs()).__name__ and KERAS_VERSION > (3, 10):
        assert names_in_a_fresh_session(ours) == names_in_a_fresh_session(theirs)
    assert type(ours())(name="mine").name == "mine"


# --- BatchNorm ---------------------------------------------------------------------------

KERAS_DEFAULTS = {"momentum": 0.99, "epsilon": 1e-3, "moving_variance_initializer": "ones"}
# id: (settings given to both classes, input shape, padded steps masked (a Masking layer's mask) or None)
BATCHNORMS = {
    "Keras-defaults": ({}, (16, 4, 4, 3), None),
    "course-settings": ({"momentum": 0.9, "epsilon": 1e-6, "moving_variance_initializer": "zeros"}, (32, 6), None),
    "channels-first-options": (
        {
            "axis": 1,
            "momentum": 0.5,
            "epsilon": 1e-2,
            "center": False,
            "gamma_initializer": keras.initializers.Constant(1.5),
            "moving_mean_initializer": "ones",
            "gamma_regularizer": keras.regularizers.L2(0.1),
            "gamma_constraint": "non_neg",
        },
        (8, 3, 5, 5),
        None,
    ),
    "no-scale-regularized-beta": (
        {"scale": False, "beta_initializer": keras.initializers.Constant(0.3), "beta_regularizer": "l1"},
        (12, 5),
        None,
    ),
    "mixed-float16": ({"dtype": "mixed_float16"}, (16, 5), None),
    "masked-padding": ({"momentum": 0.5}, (6, 7, 4), 3),
    "masked-everything": ({"momentum": 0.5}, (6, 7, 4), 7),
}


def batchnorm_pair(case):
    settings, _, _ = BATCHNORMS[case]
    return BatchNorm(**{**KERAS_DEFAULTS, **settings}), keras.layers.BatchNormalization(**settings)


def batchnorm_inputs(case, rng):
    """The case's inputs (centred on 2, spread 3) and its mask: the last `masked` time steps are padding."""
    _, shape, masked = BATCHNORMS[case]
    x = (rng.normal(size=shape) * 3 + 2).astype("float32")
    if masked is None:
        return x, None
    x[:, shape[1] - masked :, :] = 0.0
    mask = np.ones(shape[:2], dtype=bool)
    mask[:, shape[1] - masked :] = False
    return x, mask


@pytest.mark.parametrize("case", list(BATCHNORMS))
def test_batchnorm_outputs_and_state_equal_keras(rng, case):
    ours, theirs = batchnorm_pair(case)
    x, mask = batchnorm_inputs(case, rng)
    for training in (True, True, False, None):
        got, want = ours(x, training=training, mask=mask), theirs(x, training=training, mask=mask)
        np.testing.assert_allclose(as_numpy(got), as_numpy(want), rtol=1e-5, atol=1e-5, err_msg=f"training={training}")
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    assert [w.trainable for w in ours.weights] == [w.trainable for w in theirs.weights]
    for got, want in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(as_numpy(got), as_numpy(want), rtol=1e-5, atol=1e-6, err_msg=got.name)
    assert len(ours.losses) == len(theirs.losses)
    for got, want in zip(ours.losses, theirs.losses):
        np.testing.assert_allclose(as_numpy(got), as_numpy(want), rtol=1e-6)


@pytest.mark.parametrize("case", ["Keras-defaults", "channels-first-options", "masked-padding"])
def test_batchnorm_gradients_equal_keras(rng, case):
    ours, theirs = batchnorm_pair(case)
    x, mask = batchnorm_inputs(case, rng)
    upstream = rng.normal(size=x.shape).astype("float32")
    ours.build(x.shape)
    theirs.build(x.shape)

    def gradients(layer):
        inputs = keras.Variable(x)

        def loss():
            return ops.sum(ops.multiply(layer(inputs.value, training=True, mask=mask), upstream))

        return autodiff_gradients(loss, [inputs, *layer.trainable_weights])

    for got, want in zip(gradients(ours), gradients(theirs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", list(BATCHNORMS))
def test_batchnorm_config_equals_keras_on_shared_keys(case):
    ours, theirs = batchnorm_pair(case)
    got, want = shared_config(ours, theirs)
    assert got == want
    assert set(got) >= set(KERAS_DEFAULTS) | {"axis", "center", "scale", "gamma_regularizer", "beta_constraint"}
    restored = BatchNorm.from_config(ours.get_config())
    assert restored.get_config() == ours.get_config()


def test_batchnorm_name_made_the_keras_way():
    assert names_in_a_fresh_session(BatchNorm) == ("batch_norm", "batch_norm_1")


# --- initializers, weight decay, Dropout -------------------------------------------------

# id: (the kit's initializer, Keras' at equal settings); seed None: both draw a seed from
# Python's `random`, which keras.utils.set_random_seed sets before each is made.
INITIALIZERS = {
    "Xavier": (
        initializers.Xavier,
        lambda seed: keras.initializers.VarianceScaling(1.0, "fan_in", "untruncated_normal", seed),
    ),
    "He": (initializers.He, lambda seed: keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed)),
    "Normal": (
        lambda seed: initializers.Normal(0.05, seed=seed),
        lambda seed: keras.initializers.RandomNormal(0.0, 0.05, seed),
    ),
}


@pytest.mark.parametrize("seed", [7, None])
@pytest.mark.parametrize("case", list(INITIALIZERS))
def test_initializer_values_and_config_equal_keras(case, seed):
    ours, theirs = INITIALIZERS[case]
    keras.utils.set_random_seed(3)
    ours = ours(seed)
    keras.utils.set_random_seed(3)
    theirs = theirs(seed)
    for shape in [(20, 30), (3, 3, 4, 8), (7,)]:
        np.testing.assert_allclose(as_numpy(ours(shape)), as_numpy(theirs(shape)), rtol=1e-6, err_msg=str(shape))
    got, want = shared_config(ours, theirs)
    assert "seed" in got and got == want


def test_weight_decay_equals_keras_l2_of_half_lambda(rng):
    weights = rng.normal(size=(6, 4)).astype("float32")
    np.testing.assert_allclose(
        as_numpy(regularizers.WeightDecay(0.3)(weights)), as_numpy(keras.regularizers.L2(0.15)(weights)), rtol=1e-6
    )

    def dense_losses(regularizer):
        layer = keras.layers.Dense(
            4, kernel_initializer=keras.initializers.Constant(weights), kernel_regularizer=regularizer
        )
        layer.build((None, 6))
        return [as_numpy(loss) for loss in layer.losses]

    np.testing.assert_allclose(
        dense_losses(regularizers.WeightDecay(0.3)), dense_losses(keras.regularizers.L2(0.15)), rtol=1e-6
    )


def test_inverted_dropout_equals_keras_where_comparable(rng):
    """Same inference, same scaling of the kept units, same config, same names; the masks come from other random draws."""
    x = rng.uniform(1, 2, size=(100, 40)).astype("float32")
    ours, theirs = Dropout(0.3, inverted=True, seed=5), keras.layers.Dropout(0.3, seed=5)
    for training in (False, None):
        np.testing.assert_array_equal(as_numpy(ours(x, training=training)), as_numpy(theirs(x, training=training)))
    for layer in (ours, theirs):
        y = as_numpy(layer(x, training=True))
        kept = y != 0
        np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
        assert abs(kept.mean() - 0.7) < 0.03
    np.testing.assert_array_equal(
        as_numpy(Dropout(0.0, inverted=True)(x, training=True)), as_numpy(keras.layers.Dropout(0.0)(x, training=True))
    )
    got, want = shared_config(ours, theirs)
    assert {"rate", "seed"} <= got.keys() and got == want
    assert names_in_a_fresh_session(lambda: Dropout(0.3, inverted=True)) == names_in_a_fresh_session(
        lambda: keras.layers.Dropout(0.3)
    )
