"""The chapter's initial-weight rules as Keras initializers.

All three draw from a plain (untruncated) normal distribution times a scale:

| class | standard deviation | suits |
|---|---|---|
| `Normal(stddev)` | `stddev` (the chapter's 1 and 0.01) | showing what goes wrong |
| `Xavier()` | `1 / sqrt(fan_in)` | sigmoid, tanh |
| `He()` | `sqrt(2 / fan_in)` | ReLU |

`fan_in` is the number of inputs of one unit: `shape[0]` for a Dense kernel
`(n_in, n_out)`, `kh * kw * c_in` for a conv kernel `(kh, kw, c_in, c_out)`.
Note the course's Xavier is NOT `keras.initializers.GlorotNormal` (which uses
fan_in + fan_out and a truncated normal), and Keras' `HeNormal` is truncated.

Seeds behave like Keras': an integer seed (or none) gives the same values on
every call of one instance; a `keras.random.SeedGenerator` gives new values
each call.
"""

import math
import random

import keras

from coursekit.checks import check_non_negative

_PACKAGE = "coursekit"


def fan_in(shape):
    """Inputs per unit of a weight `shape`: prod(shape[:-1]) (1 for scalars)."""
    shape = tuple(shape)
    return math.prod(shape[:-1]) if len(shape) > 1 else max(1, math.prod(shape))


class _ScaledNormal(keras.initializers.Initializer):
    """Shared base: `stddev(shape) * N(0, 1)`, seeded like Keras' random initializers."""

    def __init__(self, seed=None):
        if isinstance(seed, dict):  # a serialized SeedGenerator, from get_config
            seed = keras.saving.deserialize_keras_object(seed)
        if seed is not None and not isinstance(seed, (int, keras.random.SeedGenerator)):
            raise ValueError(f"`seed` must be an int or a keras.random.SeedGenerator; received seed={seed!r}")
        self._init_seed = seed
        # Like Keras: an unseeded initializer fixes a seed once, drawn from
        # Python's `random` (which `keras.utils.set_random_seed` controls).
        self.seed = seed if seed is not None else random.randint(1, int(1e9))

    def stddev(self, shape):
        raise NotImplementedError

    def __call__(self, shape, dtype=None):
        return keras.random.normal(shape, stddev=self.stddev(shape), dtype=dtype, seed=self.seed)

    def get_config(self):
        seed = self._init_seed
        if isinstance(seed, keras.random.SeedGenerator):
            seed = keras.saving.serialize_keras_object(seed)
        return {"seed": seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Normal(_ScaledNormal):
    """Normal with a fixed standard deviation: `W ~ stddev * N(0, 1)`.

    Args:
        stddev: Float >= 0. Defaults to `0.01`.
        seed: Int or `keras.random.SeedGenerator`. Defaults to `None`.
    """

    def __init__(self, stddev=0.01, seed=None):
        self.fixed_stddev = float(check_non_negative("stddev", stddev))
        super().__init__(seed=seed)

    def stddev(self, shape):
        return self.fixed_stddev

    def get_config(self):
        return {"stddev": self.fixed_stddev, **super().get_config()}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Xavier(_ScaledNormal):
    """Xavier's initial value as the course states it: `W ~ N(0, 1) / sqrt(fan_in)`.

    Args:
        seed: Int or `keras.random.SeedGenerator`. Defaults to `None`.
    """

    def stddev(self, shape):
        # >>> exercise xavier
        # TODO: return Xavier's standard deviation 1 / sqrt(n), n = fan_in(shape): the inputs
        #   of one unit (shape[0] for a Dense kernel, kh * kw * c_in for a conv kernel),
        #   not the outputs.
        return 1.0 / math.sqrt(fan_in(shape))
        # <<< exercise xavier


@keras.saving.register_keras_serializable(package=_PACKAGE)
class He(_ScaledNormal):
    """He's initial value: `W ~ N(0, 1) * sqrt(2 / fan_in)`.

    Args:
        seed: Int or `keras.random.SeedGenerator`. Defaults to `None`.
    """

    def stddev(self, shape):
        # >>> exercise he
        # TODO: return He's standard deviation sqrt(2 / n), n = fan_in(shape) (see Xavier).
        return math.sqrt(2.0 / fan_in(shape))
        # <<< exercise he


def get(spec, seed=None):
    """An initializer from a spec: an `Initializer`, a name, or a number (fixed std).

    Names: "xavier", "he", "normal" (std 0.01), and the reference code's
    "sigmoid" (= Xavier) and "relu" (= He).
    """
    if isinstance(spec, keras.initializers.Initializer):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Normal(stddev=spec, seed=seed)
    names = {"xavier": Xavier, "sigmoid": Xavier, "he": He, "relu": He, "normal": Normal}
    try:
        return names[str(spec).lower()](seed=seed)
    except KeyError:
        raise ValueError(
            f"Unknown weight initializer {spec!r}; use a number (fixed std), "
            f"an Initializer, or one of: {', '.join(names)}"
        ) from None
