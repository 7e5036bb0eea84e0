"""The course optimizers against the NumPy reference and Keras' own test numbers.

The step-for-step comparison with Keras' built-ins is in test_keras_contract.py.
"""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import BACKEND, ROOT, checkout_first_env, requires_tensorflow
from keras import ops

from coursekit import optimizers, reference

# (name, Keras-side kwargs): defaults and a non-default setting each; the reference gets
# the same through reference.optimizer_kwargs.
CASES = [
    ("SGD", {}),
    ("SGD", {"learning_rate": 0.3}),
    ("Momentum", {}),
    ("Momentum", {"learning_rate": 0.05, "momentum": 0.5}),
    ("Nesterov", {}),
    ("Nesterov", {"learning_rate": 0.02, "momentum": 0.7}),
    ("AdaGrad", {}),
    ("AdaGrad", {"learning_rate": 0.2, "initial_accumulator_value": 0.1, "epsilon": 1e-4}),
    ("RMSprop", {}),
    ("RMSprop", {"learning_rate": 0.003, "rho": 0.9, "epsilon": 1e-5}),
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-4}),
]
IDS = [f"{name}-{'default' if not kw else 'custom'}" for name, kw in CASES]


def run_keras(optimizer, start, grads):
    """Apply each gradient list in `grads` with `optimizer`; return the values after each step."""
    variables = [keras.Variable(value) for value in start]
    history = []
    for step_grads in grads:
        optimizer.apply_gradients(zip([ops.convert_to_tensor(g) for g in step_grads], variables))
        history.append([v.numpy().copy() for v in variables])
    return history


def random_problem(rng, steps=30):
    start = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    grads = [[rng.normal(size=v.shape).astype("float32") for v in start] for _ in range(steps)]
    return start, grads


@pytest.mark.parametrize("name,keras_kwargs", CASES, ids=IDS)
def test_matches_reference_over_30_random_steps(rng, name, keras_kwargs):
    start, grads = random_problem(rng)
    ours = run_keras(optimizers.ALL[name](**keras_kwargs), start, grads)
    reference_optimizer = reference.OPTIMIZERS[name](**reference.optimizer_kwargs(keras_kwargs))
    theirs = reference.gradient_steps(reference_optimizer, start, grads)
    for step, (got, want) in enumerate(zip(ours, theirs), start=1):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6, err_msg=f"{name} step {step}")


# One step by hand: W = 1, g = 0.5, course defaults.
HAND_COMPUTED = {
    "SGD": 1 - 0.01 * 0.5,
    "Momentum": 1 - 0.01 * 0.5,  # v = -0.005
    "Nesterov": 1 - (1 + 0.9) * 0.01 * 0.5,
    "AdaGrad": 1 - 0.01 * 0.5 / (0.5 + 1e-7),  # h = 0.25
    "RMSprop": 1 - 0.01 * 0.5 / (np.sqrt(0.01 * 0.25) + 1e-7),
    # lr_t = 0.001 * sqrt(0.001) / 0.1, m = 0.05, v = 0.00025
    "Adam": 1 - (0.001 * np.sqrt(0.001) / 0.1) * 0.05 / (np.sqrt(0.00025) + 1e-7),
}


@pytest.mark.parametrize("name", list(HAND_COMPUTED))
def test_single_step_by_hand(name):
    [[value]] = run_keras(optimizers.ALL[name](), [np.array([1.0], "float32")], [[np.array([0.5], "float32")]])
    np.testing.assert_allclose(value, [HAND_COMPUTED[name]], rtol=1e-6)


def test_adagrad_and_rmsprop_differ_from_keras_builtins(rng):
    """The course's epsilon placement and starting state are not Keras' (documented)."""
    start, grads = random_problem(rng, steps=3)
    ours = run_keras(optimizers.AdaGrad(), start, grads)[-1][0]
    keras_adagrad = run_keras(keras.optimizers.Adagrad(0.01), start, grads)[-1][0]
    assert np.max(np.abs(ours - keras_adagrad)) > 1e-3


@pytest.mark.parametrize("name", list(optimizers.ALL))
def test_config_round_trip(name):
    optimizer = optimizers.ALL[name](learning_rate=0.123, clipnorm=2.0, weight_decay=0.01)
    config = optimizer.get_config()
    restored = optimizers.ALL[name].from_config(config)
    assert restored.get_config() == config
    serialized = keras.optimizers.serialize(optimizer)
    assert type(keras.optimizers.deserialize(serialized)) is type(optimizer)


@pytest.mark.parametrize(
    "make,argument,value",
    [
        (lambda: optimizers.SGD(-0.1), "learning_rate", "-0.1"),
        (lambda: optimizers.Adam(learning_rate=float("nan")), "learning_rate", "nan"),
        (lambda: optimizers.Momentum(momentum=1.0), "momentum", "1.0"),
        (lambda: optimizers.Nesterov(momentum=-0.2), "momentum", "-0.2"),
        (lambda: optimizers.Adam(beta_1=1.5), "beta_1", "1.5"),
        (lambda: optimizers.Adam(beta_2=1.0), "beta_2", "1.0"),
        (lambda: optimizers.Adam(epsilon=0.0), "epsilon", "0.0"),
        (lambda: optimizers.AdaGrad(epsilon=-1e-7), "epsilon", "-1e-07"),
        (lambda: optimizers.AdaGrad(initial_accumulator_value=-1.0), "initial_accumulator_value", "-1.0"),
        (lambda: optimizers.RMSprop(rho=1.0), "rho", "1.0"),
        (lambda: optimizers.Adam(amsgrad="yes"), "amsgrad", "'yes'"),
    ],
)
def test_nonsense_arguments_raise_value_error(make, argument, value):
    with pytest.raises(ValueError, match=rf"{argument}.*{value}"):
        make()


def test_get_by_name():
    assert isinstance(optimizers.get("adagrad", learning_rate=0.1), optimizers.AdaGrad)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamax'.*SGD"):
        optimizers.get("adamax")


# --- Keras base-optimizer features, held against Keras' own test numbers -------------------


@pytest.mark.parametrize("name", list(optimizers.ALL))
def test_weight_decay_and_exclusion(name):
    # keras/src/optimizers/sgd_test.py::test_weight_decay (zero gradients: only decay acts).
    zero = ops.zeros(())
    var1, var2, var3 = keras.Variable(2.0), keras.Variable(2.0, name="exclude"), keras.Variable(2.0)
    optimizers.ALL[name](learning_rate=1.0, weight_decay=0.004).apply_gradients([(zero, var1)])
    second = optimizers.ALL[name](learning_rate=1.0, weight_decay=0.004)
    second.exclude_from_weight_decay(var_names=["exclude"])
    second.apply_gradients(zip([zero, zero], [var1, var2]))
    third = optimizers.ALL[name](learning_rate=1.0, weight_decay=0.004)
    third.exclude_from_weight_decay(var_list=[var3])
    third.apply_gradients(zip([zero, zero], [var1, var3]))
    assert var1.numpy() == pytest.approx(1.9760959, abs=1e-6)
    assert var2.numpy() == pytest.approx(2.0, abs=1e-6)
    assert var3.numpy() == pytest.approx(2.0, abs=1e-6)


def test_gradient_clipping():
    # keras/src/optimizers/optimizer_test.py::test_clip_norm / test_clip_value / test_global_clip_norm
    grad = ops.convert_to_tensor([100.0, 100.0])
    clipped = optimizers.Adam(clipnorm=1)._clip_gradients([grad])[0]
    np.testing.assert_allclose(clipped, [2**0.5 / 2, 2**0.5 / 2], rtol=1e-6)
    clipped = optimizers.AdaGrad(clipvalue=1)._clip_gradients([grad])[0]
    np.testing.assert_allclose(clipped, [1.0, 1.0])
    raw = np.array([50.0, 100.0], dtype="float32")
    clipped = optimizers.RMSprop(global_clipnorm=1)._clip_gradients([ops.convert_to_tensor(raw)])[0]
    np.testing.assert_allclose(clipped, raw / np.linalg.norm(raw), rtol=1e-6)
    # And clipping really acts inside a step: SGD with clipvalue=1, g=100 moves W by lr * 1.
    variable = keras.Variable([1.0, 1.0])
    optimizers.SGD(0.5, clipvalue=1).apply_gradients([(grad, variable)])
    np.testing.assert_allclose(variable.numpy(), [0.5, 0.5])


def test_ema():
    # keras/src/optimizers/optimizer_test.py::test_ema
    variable = keras.Variable([[3.0, 4.0], [5.0, 6.0]])
    grads = ops.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
    optimizer = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3)
    optimizer.apply_gradients([(grads, variable)])
    np.testing.assert_allclose(variable.numpy(), [[2.0, 3.0], [4.0, 5.0]])
    optimizer.apply_gradients([(grads, variable)])
    np.testing.assert_allclose(
        optimizer._model_variables_moving_average[0].numpy(), [[1.9, 2.9], [3.9, 4.9]], rtol=1e-6
    )
    optimizer.apply_gradients([(grads, variable)])
    np.testing.assert_allclose(variable.numpy(), [[1.71, 2.71], [3.71, 4.71]], rtol=1e-6)


def test_gradient_accumulation():
    # keras/src/optimizers/optimizer_test.py::test_gradient_accumulation
    variable = keras.Variable([[1.0, 2.0], [3.0, 4.0]])
    grads = ops.convert_to_tensor([[1.0, 1.0], [1.0, 1.0]])
    optimizer = optimizers.SGD(learning_rate=1.0, gradient_accumulation_steps=3)
    optimizer.apply_gradients([(grads, variable)])
    optimizer.apply_gradients([(grads, variable)])
    np.testing.assert_allclose(variable.numpy(), [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(optimizer._accumulated_gradients[0].numpy(), [[2.0, 2.0], [2.0, 2.0]])
    optimizer.apply_gradients([(grads, variable)])
    np.testing.assert_allclose(variable.numpy(), [[0.0, 1.0], [2.0, 3.0]])
    # Keras 3.15 counts one iteration per applied (accumulated) update.
    assert int(np.asarray(optimizer.iterations)) == 1


def test_static_loss_scaling():
    # keras/src/optimizers/optimizer_test.py::test_static_loss_scaling
    variable = keras.Variable([[1.0, 2.0], [3.0, 4.0]])
    grads = ops.convert_to_tensor([[1.0, 2.0], [3.0, 4.0]]) * 1024.0
    optimizer = optimizers.SGD(learning_rate=1.0, loss_scale_factor=1024.0)
    optimizer.apply_gradients([(grads, variable)])
    assert float(optimizer.scale_loss(1.0)) == 1024.0
    np.testing.assert_allclose(variable.numpy(), [[0.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("name", ["Momentum", "Adam"])
def test_mixed_float16_wraps_in_loss_scale_optimizer_and_trains(rng, name):
    keras.config.set_dtype_policy("mixed_float16")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    model.compile(optimizers.ALL[name](0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, optimizers.ALL[name])
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert model.layers[0].kernel.dtype == "float32"
    assert np.isfinite(history).all() and history[-1] < history[0]


@requires_tensorflow
@pytest.mark.parametrize("name", list(optimizers.ALL))
def test_sparse_indexed_slices_gradient_equals_dense(name):
    # keras/src/optimizers/optimizer_sparse_test.py::test_sparse_correctness
    import tensorflow as tf

    sparse_opt, dense_opt = optimizers.ALL[name](), optimizers.ALL[name]()
    var_sparse = keras.Variable(np.ones((5, 3, 2), "float32"))
    var_dense = keras.Variable(np.ones((5, 3, 2), "float32"))
    for i in range(5):
        grad = tf.IndexedSlices(tf.ones((3, 3, 2)) * (10.0 - i), tf.constant([0, 2, 4]), (5, 3, 2))
        sparse_opt.apply([grad], [var_sparse])
        dense_opt.apply([tf.convert_to_tensor(grad)], [var_dense])
        np.testing.assert_allclose(var_sparse.numpy(), var_dense.numpy(), rtol=1e-6)
    assert not np.allclose(var_sparse.numpy(), 1.0)


@requires_tensorflow
def test_tensorflow_leak_fix_still_hooks_into_keras_and_training_registers_nothing(rng, monkeypatch):
    """The fix of the TensorFlow graph leak overrides Keras' private `_all_reduce_sum_gradients`.

    Fails loudly if Keras renames or drops that hook (the override would silently stop
    running and the leak come back): the base TensorFlow optimizer must still define it with
    the same signature, and the kit's override must really run in a traced training step.
    Training with a course optimizer must add nothing to TensorFlow's process-wide gradient
    registry (where each single-replica all-reduce left a traced graph for good).
    """
    import inspect

    from keras.src.backend.tensorflow.optimizer import TFOptimizer
    from tensorflow.python.framework import ops as tf_ops

    hook = getattr(TFOptimizer, "_all_reduce_sum_gradients", None)
    assert hook is not None, "Keras' TFOptimizer no longer has _all_reduce_sum_gradients: re-check the leak fix"
    assert list(inspect.signature(hook).parameters) == ["self", "grads_and_vars"]
    assert issubclass(optimizers._CourseOptimizer, TFOptimizer)

    calls = []
    override = optimizers._CourseOptimizer._all_reduce_sum_gradients

    def counted(self, grads_and_vars):
        calls.append(type(self).__name__)
        return override(self, grads_and_vars)

    monkeypatch.setattr(optimizers._CourseOptimizer, "_all_reduce_sum_gradients", counted)
    registry = tf_ops._gradient_registry._registry
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    for name, make in optimizers.ALL.items():
        before = len(registry)
        keras.backend.clear_session()
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
        model.compile(make(), "mse")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert name in calls, f"the kit's _all_reduce_sum_gradients did not run when training with {name}"
        assert len(registry) == before, name


DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    backend = os.environ["KERAS_BACKEND"]
    if backend == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from coursekit import optimizers

    def train(name, distributed):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 6)).astype("float32")
        y = rng.normal(size=(64, 1)).astype("float32")
        def build():
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
            model.compile(optimizers.ALL[name](), "mse")
            return model
        if distributed and backend == "tensorflow":
            with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
                model = build()
        elif distributed:
            keras.distribution.set_distribution(keras.distribution.DataParallel())
            model = build()
        else:
            model = build()
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        if distributed and backend != "tensorflow":
            keras.distribution.set_distribution(None)
        return [w.copy() for w in model.get_weights()], int(np.asarray(model.optimizer.iterations))

    for name in optimizers.ALL:
        single, steps_single = train(name, False)
        multi, steps_multi = train(name, True)
        assert steps_single == steps_multi == 8, (name, steps_single, steps_multi)
        for a, b in zip(single, multi):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)
        print("ok", name)
    """
)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_distributed_training_matches_single_device(backend, tmp_path):
    """Two replicas (TF MirroredStrategy / JAX DataParallel over 2 CPU devices) train like one device."""
    if backend != BACKEND:
        pytest.skip(f"runs in the {backend} leg of the test matrix")
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    env = checkout_first_env(
        KERAS_BACKEND=backend, XLA_FLAGS="--xla_force_host_platform_device_count=2", TF_CPP_MIN_LOG_LEVEL="3"
    )
    result = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("ok ") == len(optimizers.ALL)
