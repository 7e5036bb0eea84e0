"""coursekit.keras_internals against Keras' own behaviour: these fail loudly when a Keras release changes them."""

import keras
import numpy as np
import pytest
from conftest import BACKEND

from coursekit import keras_internals, optimizers
from coursekit.models import classification_loss, multilayer_net

KERAS_OPTIMIZERS = {
    "keras.SGD": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "keras.Adam": lambda: keras.optimizers.Adam(0.01),
    "keras.RMSprop": lambda: keras.optimizers.RMSprop(0.01),
}


def test_every_internal_used_is_there():
    for owner, attribute in keras_internals.USED:
        assert hasattr(owner, attribute), f"Keras no longer has {owner.__name__}.{attribute}"


def test_keep_float64_keeps_a_float64_matmul_in_float64():
    from coursekit import runtime

    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(6, 5)), rng.normal(size=(5, 4))
    outside = keras.backend.result_type("float64", "float64")  # Keras 3.15: float32 on JAX and PyTorch; 3.10: float64
    with runtime.float64():
        product = keras.ops.convert_to_numpy(keras.ops.matmul(x, w))
    np.testing.assert_allclose(product, x @ w, rtol=1e-13)
    assert keras.backend.result_type("float64", "float64") == outside  # Keras' promotion as it was


@pytest.mark.skipif(BACKEND == "jax", reason="JAX's optimizers are stateless already")
@pytest.mark.parametrize("name", [*sorted(optimizers.ALL), *KERAS_OPTIMIZERS])
@pytest.mark.parametrize("kwargs", [{}, {"use_ema": True}, {"weight_decay": 0.1}, {"clipnorm": 0.5}], ids=str)
def test_base_stateless_apply_equals_apply_and_writes_nothing(name, kwargs):
    """Keras' backend-independent optimizer methods give what the backend's own `apply` gives."""

    def make():
        if name in KERAS_OPTIMIZERS:
            return KERAS_OPTIMIZERS[name]().from_config({**KERAS_OPTIMIZERS[name]().get_config(), **kwargs})
        return optimizers.get(name, **kwargs)

    model = multilayer_net(8, [5], weight_decay=0.01, seed=1)
    reference = multilayer_net(8, [5], weight_decay=0.01, seed=1)
    optimizer, stateful = make(), make()
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
    trainable = [v.numpy() for v in model.trainable_variables]
    optimizer_values = [v.numpy() for v in optimizer.variables]
    new_trainable, new_optimizer_values = trainable, optimizer_values
    for _ in range(2):
        new_trainable, new_optimizer_values = keras_internals.base_stateless_apply(
            optimizer, new_optimizer_values, [keras.ops.convert_to_tensor(g) for g in grads], new_trainable
        )
        stateful.apply([keras.ops.convert_to_tensor(g) for g in grads], reference.trainable_variables)
    for variable, before in zip([*model.trainable_variables, *optimizer.variables], trainable + optimizer_values):
        np.testing.assert_array_equal(variable.numpy(), before)  # nothing written
    for value, variable in zip(new_trainable, reference.trainable_variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(value), variable.numpy(), rtol=1e-6, atol=1e-7)
    for value, variable in zip(new_optimizer_values, stateful.variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(value), variable.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_tensor_rate_dropout_draws_what_keras_dropout_draws(rate):
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(64, 32)).astype("float32"))
    ours, theirs = keras.layers.Dropout(rate, seed=7), keras.layers.Dropout(rate, seed=7)
    call = keras_internals.tensor_rate_dropout(ours)
    ours.rate = keras.ops.convert_to_tensor(rate)
    for _ in range(2):  # the seed generators advance alike
        expected = keras.ops.convert_to_numpy(theirs(x, training=True))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(call(x, training=True)), expected, rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(call(x, training=False)), keras.ops.convert_to_numpy(x))


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's seeded draws")
@pytest.mark.parametrize("shape", [(5, 3), ()])
def test_seeded_draws_draw_what_keras_draws_eagerly_traced_and_vectorized(shape):
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx

    def draw(generator):
        return keras.random.uniform(shape, minval=-1.0, maxval=2.0, seed=generator)

    theirs, ours = keras.random.SeedGenerator(11), keras.random.SeedGenerator(11)
    expected = [draw(theirs) for _ in range(2)]  # Keras' own: torch.Generator(int(seed))
    with keras_internals.seeded_draws():
        np.testing.assert_array_equal(draw(ours).numpy(), expected[0].numpy())

        def stateless(state):
            with keras.StatelessScope(state_mapping=[(ours.state, state)]) as scope:
                return draw(ours), scope.get_current_value(ours.state)

        graph = make_fx(stateless, tracing_mode="fake")(ours.state.value)
        value, state = graph(ours.state.value)  # the graph draws the values of this call's seed
        np.testing.assert_array_equal(value.numpy(), expected[1].numpy())
        members = torch.stack([theirs.state.value, ours.state.value, state])
        drawn, _ = torch.func.vmap(stateless)(members)
    for index, member_state in enumerate(members):
        alone = keras.random.SeedGenerator(0)
        alone.state.assign(member_state)
        np.testing.assert_array_equal(drawn[index].numpy(), draw(alone).numpy())  # each member its own numbers


def test_loss_and_metrics_are_what_train_on_batch_logs():
    """compute_loss (with a weight penalty), update_metrics and metric_results against `test_on_batch`."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 10, 16)
    model = multilayer_net(8, [5], weight_decay=0.1, seed=1)
    model.compile(optimizers.SGD(0.1), classification_loss(), metrics=["accuracy"])
    keras_internals.build_for_training(model, x, y)
    expected = model.test_on_batch(x, y, return_dict=True)
    model.reset_metrics()
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    metrics = [v.value for v in model.metrics_variables]
    y_pred, non_trainable, losses = model.stateless_call(
        trainable, non_trainable, x, training=False, return_losses=True
    )
    assert len(losses) == 2  # the two kernels' weight decay
    loss, _, metrics = keras_internals.compute_loss(
        model, trainable, non_trainable, metrics, x, y, y_pred, losses, False
    )
    metrics = keras_internals.update_metrics(model, metrics, loss, x, y, y_pred)
    results = {
        k: float(keras.ops.convert_to_numpy(v)) for k, v in keras_internals.metric_results(model, metrics).items()
    }
    assert set(results) == set(expected)
    for name, value in expected.items():
        assert np.isfinite(value) and results[name] == pytest.approx(value, rel=1e-6), name
