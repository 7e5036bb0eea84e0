"""BatchNorm and Dropout: course formulas, Keras semantics, gradients, mixed precision."""

import keras
import numpy as np
import pytest

from coursekit import reference
from coursekit.gradcheck import autodiff_gradients, numerical_gradients, relative_error
from coursekit.layers import BatchNorm, Dropout


def as_numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_training_output_is_normalised_and_moving_stats_use_momentum_09(rng):
    x = (rng.normal(size=(64, 5)) * 3 + 2).astype("float32")
    layer = BatchNorm()
    y = as_numpy(layer(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.1 * x.var(axis=0), rtol=1e-5)
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.19 * x.mean(axis=0), rtol=1e-5)


def test_matches_numpy_reference_in_training_and_inference(rng):
    x = rng.normal(size=(32, 6)).astype("float32")
    layer = BatchNorm()
    layer.build(x.shape)
    gamma, beta = rng.normal(size=6).astype("float32"), rng.normal(size=6).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    running_mean, running_var = np.zeros(6), np.zeros(6)
    for _ in range(3):
        want, _ = reference.batchnorm_forward(x, gamma, beta, running_mean, running_var, train=True)
        np.testing.assert_allclose(as_numpy(layer(x, training=True)), want, rtol=1e-4, atol=1e-5)
    want, _ = reference.batchnorm_forward(x, gamma, beta, running_mean, running_var, train=False)
    np.testing.assert_allclose(as_numpy(layer(x, training=False)), want, rtol=1e-4, atol=1e-4)


def test_training_flag_semantics(rng):
    x = rng.normal(size=(8, 3)).astype("float32") + 5
    layer = BatchNorm()
    inference = as_numpy(layer(x))  # training=None means inference: moving stats (0, 0)
    np.testing.assert_allclose(inference, x / np.sqrt(1e-6), rtol=1e-4)
    assert np.all(layer.moving_mean.numpy() == 0)
    layer.trainable = False  # frozen: inference mode even with training=True, no updates
    np.testing.assert_allclose(as_numpy(layer(x, training=True)), inference, rtol=1e-5)
    assert np.all(layer.moving_mean.numpy() == 0)


def test_per_channel_statistics_on_conv_inputs(rng):
    x = rng.normal(size=(4, 3, 5, 5)).astype("float32") * np.array([1, 5, 10]).reshape(1, 3, 1, 1)
    layer = BatchNorm(axis=1)  # channels_first
    y = as_numpy(layer(x, training=True))
    assert layer.gamma.shape == (3,)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


def test_mixed_precision_computes_in_float32(rng):
    keras.config.set_dtype_policy("mixed_float16")
    x = (rng.normal(size=(32, 4)) * 300).astype("float16")  # x**2 overflows float16
    layer = BatchNorm()
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    assert layer.gamma.dtype == "float32" and layer.moving_variance.dtype == "float32"
    assert np.isfinite(layer.moving_variance.numpy()).all()
    want = (x.astype("float32") - x.astype("float32").mean(0)) / np.sqrt(x.astype("float32").var(0) + 1e-6)
    np.testing.assert_allclose(as_numpy(y).astype("float32"), want, atol=2e-2)


def test_gradients_match_central_differences_float64(rng, float64):
    """Autodiff through Dense -> BatchNorm -> sigmoid -> Dense, float64, batch of 6."""
    dense_in, norm, dense_out = keras.layers.Dense(4), BatchNorm(), keras.layers.Dense(3)
    x = rng.normal(size=(6, 5))
    labels = rng.normal(size=(6, 3))
    dense_out(keras.ops.sigmoid(norm(dense_in(x))))
    norm.gamma.assign(rng.normal(size=4) + 1)
    norm.beta.assign(rng.normal(size=4))

    def loss():
        y = dense_out(keras.ops.sigmoid(norm(dense_in(x), training=True)))
        return keras.ops.sum(keras.ops.square(keras.ops.subtract(y, labels)))

    variables = [dense_in.kernel, dense_in.bias, norm.gamma, norm.beta, dense_out.kernel]
    autodiff = autodiff_gradients(loss, variables)
    for auto, numeric, variable in zip(autodiff, numerical_gradients(loss, variables), variables):
        assert relative_error(auto, numeric) < 1e-6, variable.path
    # BatchNorm subtracts the batch mean, so a bias right before it gets no gradient.
    np.testing.assert_allclose(autodiff[1], 0, atol=1e-12)


def test_reference_backward_matches_autodiff(rng, float64):
    x = rng.normal(size=(8, 3))
    dout = rng.normal(size=(8, 3))
    layer = BatchNorm()
    layer.build(x.shape)
    x_var = keras.Variable(x)
    grads = autodiff_gradients(
        lambda: keras.ops.sum(keras.ops.multiply(layer(x_var.value, training=True), dout)),
        [x_var, layer.gamma, layer.beta],
    )
    _, cache = reference.batchnorm_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.zeros(3), train=True)
    for got, want in zip(grads, reference.batchnorm_backward(dout, cache)):
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def test_batchnorm_bad_arguments():
    with pytest.raises(ValueError, match=r"momentum.*1.5"):
        BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match=r"epsilon.*0"):
        BatchNorm(epsilon=0)
    with pytest.raises(ValueError, match=r"center.*'no'"):
        BatchNorm(center="no")
    with pytest.raises(ValueError, match="axis=3 is out of range"):
        BatchNorm(axis=3)(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"mask.*one axis less.*mask.shape=\(4, 3\)"):
        BatchNorm()(np.zeros((4, 3), "float32"), training=True, mask=np.ones((4, 3), bool))


def test_batchnorm_defaults_are_the_course_s_and_keras_options_act(rng):
    config = BatchNorm().get_config()
    assert (config["momentum"], config["epsilon"], config["center"], config["scale"]) == (0.9, 1e-6, True, True)
    assert config["moving_variance_initializer"]["class_name"] == "Zeros"
    x = rng.normal(size=(16, 4)).astype("float32") * 2 + 3
    layer = BatchNorm(center=False, scale=False, moving_mean_initializer="ones", beta_regularizer="l2")
    y = as_numpy(layer(x, training=True))
    assert layer.gamma is None and layer.beta is None and not layer.trainable_weights and not layer.losses
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.9 + 0.1 * x.mean(0), rtol=1e-5)
    layer = BatchNorm(gamma_initializer=keras.initializers.Constant(2.0), gamma_regularizer=keras.regularizers.L2(0.5))
    layer.build(x.shape)
    np.testing.assert_allclose(as_numpy(layer.losses[0]), 0.5 * 4 * 2.0**2)
    restored = BatchNorm.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


def test_batchnorm_statistics_ignore_masked_entries(rng):
    """Training statistics over the unmasked entries only; every entry is normalised with them."""
    x = (rng.normal(size=(6, 7, 4)) * 3 + 2).astype("float32")
    x[:, 4:, :] = 100.0  # padding, masked out
    mask = np.zeros((6, 7), bool)
    mask[:, :4] = True
    layer = BatchNorm(momentum=0.0)
    y = as_numpy(layer(x, training=True, mask=mask))
    kept = x[:, :4, :].reshape(-1, 4)
    mean, var = kept.mean(axis=0), kept.var(axis=0)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=1e-5)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-6), rtol=1e-4, atol=1e-4)
    # Inference ignores the mask (moving statistics); a batch with nothing unmasked gives 0 and 0.
    np.testing.assert_allclose(as_numpy(layer(x, mask=mask)), as_numpy(layer(x)))
    layer(x, training=True, mask=np.zeros((6, 7), bool))
    assert np.all(layer.moving_mean.numpy() == 0) and np.all(layer.moving_variance.numpy() == 0)


def test_batchnorm_masked_statistics_in_float32_under_mixed_precision(rng):
    keras.config.set_dtype_policy("mixed_float16")
    x = (rng.normal(size=(8, 5, 3)) * 300).astype("float16")  # x**2 overflows float16
    mask = np.arange(5) < 3
    mask = np.broadcast_to(mask, (8, 5))
    layer = BatchNorm(momentum=0.0)
    y = layer(x, training=True, mask=mask)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    kept = x[:, :3, :].astype("float32").reshape(-1, 3)
    np.testing.assert_allclose(layer.moving_variance.numpy(), kept.var(axis=0), rtol=1e-3)


def test_dropout_course_semantics(rng):
    x = rng.uniform(1, 2, size=(200, 50)).astype("float32")
    layer = Dropout(0.3, seed=1)
    y = as_numpy(layer(x, training=True))
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept])  # no rescaling in training
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(as_numpy(layer(x)), x * 0.7, rtol=1e-6)  # inference scales by 1 - rate


def test_dropout_inverted_semantics(rng):
    x = rng.uniform(1, 2, size=(200, 50)).astype("float32")
    layer = Dropout(0.25, inverted=True, seed=1)
    y = as_numpy(layer(x, training=True))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(as_numpy(layer(x)), x)


def test_dropout_seed_reproducible_and_masks_change_between_calls():
    x = np.ones((20, 20), "float32")
    a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    first = as_numpy(a(x, training=True))
    np.testing.assert_array_equal(first, as_numpy(b(x, training=True)))
    assert not np.array_equal(first, as_numpy(a(x, training=True)))


def test_dropout_bad_rate_and_config():
    for rate in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"rate.*{rate}"):
            Dropout(rate)
    layer = Dropout(0.2, inverted=True, seed=4)
    restored = Dropout.from_config(layer.get_config())
    assert (restored.rate, restored.inverted, restored.seed) == (0.2, True, 4)
