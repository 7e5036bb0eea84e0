"""WeightDecay: 0.5 * lam * sum(W^2), gradient lam * W."""

import keras
import numpy as np
import pytest

from coursekit.gradcheck import autodiff_gradients
from coursekit.regularizers import WeightDecay


def test_penalty_value_and_equivalence_with_keras_l2(rng):
    weights = rng.normal(size=(5, 4)).astype("float32")
    penalty = float(WeightDecay(0.1)(keras.ops.convert_to_tensor(weights)))
    assert penalty == pytest.approx(0.5 * 0.1 * np.sum(weights**2), rel=1e-6)
    assert penalty == pytest.approx(float(keras.regularizers.L2(0.05)(weights)), rel=1e-6)


def test_gradient_is_lambda_times_w(rng):
    variable = keras.Variable(rng.normal(size=(3, 3)).astype("float32"))
    [grad] = autodiff_gradients(lambda: WeightDecay(0.3)(variable.value), [variable])
    np.testing.assert_allclose(grad, 0.3 * variable.numpy(), rtol=1e-6)


def test_applies_to_kernels_through_model_losses(rng):
    layer = keras.layers.Dense(3, kernel_regularizer=WeightDecay(0.2))
    layer(np.zeros((1, 4), "float32"))
    [loss] = layer.losses
    assert float(loss) == pytest.approx(0.1 * np.sum(layer.kernel.numpy() ** 2), rel=1e-5)


def test_config_and_bad_lambda():
    assert WeightDecay.from_config(WeightDecay(0.25).get_config()).lam == 0.25
    with pytest.raises(ValueError, match=r"lam.*-1"):
        WeightDecay(-1)
