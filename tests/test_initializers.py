"""Initializer statistics (std, untruncated tails, fan-in) and Keras-like seed behaviour."""

import math

import keras
import numpy as np
import pytest

from coursekit import initializers
from coursekit.initializers import He, Normal, Xavier


@pytest.mark.parametrize(
    "initializer,shape,expected_std",
    [
        (Normal(0.01, seed=1), (1000, 1000), 0.01),
        (Normal(1.0, seed=1), (1000, 1000), 1.0),
        (Xavier(seed=2), (1000, 1000), 1 / math.sqrt(1000)),
        (He(seed=3), (1000, 1000), math.sqrt(2 / 1000)),
        (Xavier(seed=4), (3, 3, 64, 256), 1 / math.sqrt(3 * 3 * 64)),
        (He(seed=5), (3, 3, 64, 256), math.sqrt(2 / (3 * 3 * 64))),
    ],
)
def test_standard_deviation_within_2_percent_and_tails_untruncated(initializer, shape, expected_std):
    values = keras.ops.convert_to_numpy(initializer(shape))
    assert values.shape == shape
    assert abs(values.std() / expected_std - 1) < 0.02
    assert abs(values.mean()) < 0.01 * expected_std
    # A truncated normal (Keras' HeNormal, GlorotNormal) has nothing beyond 2 std.
    beyond = np.mean(np.abs(values) > 2 * expected_std)
    assert 0.040 < beyond < 0.051  # 4.55% for a normal distribution
    assert np.abs(values).max() > 4 * expected_std


def test_course_xavier_is_not_keras_glorot():
    """Xavier uses fan_in only; Glorot uses (fan_in + fan_out) / 2."""
    values = keras.ops.convert_to_numpy(Xavier(seed=0)((100, 900)))
    assert abs(values.std() - 0.1) < 0.002  # Glorot would give sqrt(2 / 1000) = 0.045


def test_fan_in():
    assert initializers.fan_in((784, 100)) == 784
    assert initializers.fan_in((5, 5, 3, 16)) == 75
    assert initializers.fan_in((7,)) == 7


def test_int_seed_gives_same_values_every_call_and_instance():
    a = keras.ops.convert_to_numpy(He(seed=7)((20, 5)))
    initializer = He(seed=7)
    b = keras.ops.convert_to_numpy(initializer((20, 5)))
    c = keras.ops.convert_to_numpy(initializer((20, 5)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, c)
    d = keras.ops.convert_to_numpy(He(seed=8)((20, 5)))
    assert not np.allclose(a, d)


def test_unseeded_instance_is_fixed_like_keras_but_instances_differ():
    initializer = Xavier()
    first = keras.ops.convert_to_numpy(initializer((10, 10)))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(initializer((10, 10))))
    assert not np.allclose(first, keras.ops.convert_to_numpy(Xavier()((10, 10))))


def test_unseeded_follows_the_global_seed():
    keras.utils.set_random_seed(99)
    a = keras.ops.convert_to_numpy(He()((10, 10)))
    keras.utils.set_random_seed(99)
    b = keras.ops.convert_to_numpy(He()((10, 10)))
    np.testing.assert_array_equal(a, b)


def test_seed_generator_gives_new_values_each_call():
    initializer = Normal(0.1, seed=keras.random.SeedGenerator(3))
    a = keras.ops.convert_to_numpy(initializer((10, 10)))
    b = keras.ops.convert_to_numpy(initializer((10, 10)))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("cls", [Xavier, He])
def test_config_round_trip(cls):
    initializer = cls(seed=5)
    restored = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    assert type(restored) is cls
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(initializer((4, 4))), keras.ops.convert_to_numpy(restored((4, 4)))
    )
    normal = Normal(0.5, seed=3)
    assert Normal.from_config(normal.get_config()).get_config() == {"stddev": 0.5, "seed": 3}


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"stddev.*-0.1"):
        Normal(-0.1)
    with pytest.raises(ValueError, match="seed"):
        He(seed="abc")
    with pytest.raises(ValueError, match="Unknown weight initializer 'glorot'"):
        initializers.get("glorot")


def test_get_resolves_names_and_numbers():
    assert isinstance(initializers.get("he"), He)
    assert isinstance(initializers.get("relu"), He)
    assert isinstance(initializers.get("sigmoid"), Xavier)
    normal = initializers.get(0.01)
    assert isinstance(normal, Normal) and normal.fixed_stddev == 0.01
