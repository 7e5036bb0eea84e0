"""The course's networks: layer order, initial weights and weight decay on every kernel."""

import keras
import numpy as np
import pytest

from coursekit.initializers import Normal
from coursekit.layers import BatchNorm, Dropout
from coursekit.models import multilayer_net
from coursekit.regularizers import WeightDecay


def test_layer_order_dense_batchnorm_activation_dropout():
    model = multilayer_net(20, [8, 8], 3, batch_norm=True, dropout_rate=0.2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNorm", "Activation", "Dropout"] * 2 + ["Dense"]
    assert model.output_shape == (None, 3)


def test_plain_net_and_weight_decay_on_every_kernel_only():
    model = multilayer_net(784, [100] * 4, weight_decay=0.1)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == 5
    assert all(isinstance(layer.kernel_regularizer, WeightDecay) for layer in dense)
    assert all(layer.bias_regularizer is None for layer in dense)
    expected = 0.05 * sum(np.sum(layer.kernel.numpy() ** 2) for layer in dense)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert not any(isinstance(layer, (BatchNorm, Dropout)) for layer in model.layers)


@pytest.mark.parametrize("spec,std", [("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(1 / 400)), (0.01, 0.01)])
def test_weight_init_specs(spec, std):
    model = multilayer_net(400, [400, 400], weight_init=spec, seed=0)
    layer = model.get_layer("dense_2")  # second hidden layer: fan_in 400
    assert abs(layer.kernel.numpy().std() / std - 1) < 0.02
    assert np.all(layer.bias.numpy() == 0)


def test_seed_makes_weights_reproducible_and_layers_distinct():
    a, b = multilayer_net(30, [30, 30], seed=4), multilayer_net(30, [30, 30], seed=4)
    np.testing.assert_array_equal(a.get_layer("dense_1").kernel.numpy(), b.get_layer("dense_1").kernel.numpy())
    assert not np.allclose(a.get_layer("dense_1").kernel.numpy(), a.get_layer("dense_2").kernel.numpy())


def test_initializer_object_is_used_as_is():
    model = multilayer_net(10, [5], weight_init=Normal(0.5, seed=1))
    assert model.get_layer("dense_1").kernel_initializer.fixed_stddev == 0.5


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"hidden_sizes": [0]}, "positive integers"),
        ({"dropout_rate": 1.2}, "dropout_rate"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"weight_init": "uniformish"}, "Unknown weight initializer"),
        ({"activation": "reluu"}, "reluu"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"input_size": 10, "hidden_sizes": [5], **kwargs}
    with pytest.raises(ValueError, match=message):
        multilayer_net(**arguments)
