"""Keras' own tests, run from the installed wheel against the kit's classes.

The Keras wheel ships its test modules. Each one used here is loaded as a fresh,
private copy (the installed module is left alone) in which the names of Keras'
classes are pointed at the kit's:

- `sgd_test.py`: `SGD` -> the kit's `SGD`, `Momentum` or `Nesterov`, picked by
  `momentum` and `nesterov` as `keras.optimizers.SGD` reads them;
- `adam_test.py`: `Adam` -> the kit's `Adam`;
- `optimizer_test.py`: `optimizers.SGD` and `optimizers.Adam` as above, and
  `optimizers.get("sgd" | "adam" | their configs)` -> the kit's classes; every other
  name stays Keras' own. Its tests parameterized over every Keras optimizer run for
  "adam" and "sgd" only (the other nine cases would test Keras' optimizers, not the kit);
- `batch_normalization_test.py`: `layers.BatchNormalization` -> the kit's `BatchNorm`
  with Keras' defaults where the course's differ (momentum 0.99, epsilon 1e-3, moving
  variance starting at 1). Its masking and trainable tests run, and the basic (the
  constructor's arguments, regularizers, serialization, mixed precision) and float16
  autocast ones; `test_correctness` (16 cases) runs with the long runs (`-m slow`); the
  Batch Renormalization tests do not run: the kit's BatchNorm does not offer `renorm`.

pytest collects the `TestCase` classes below (in both legs of `test.sh`, TensorFlow and
JAX). One difference is expected and marked so (strict xfail):
`SGDTest.test_invalid_momentum` checks Keras' exact error wording; the kit raises its own
ValueError, naming the argument and the value (`test_optimizers.py` holds it to that).
"""

import abc
import importlib.util
import types

import keras
import pytest
from keras.src import testing

from coursekit import optimizers
from coursekit.layers import BatchNorm


def keras_test_module(name):
    """A private copy of Keras' installed test module `name` (e.g. "keras.src.optimizers.sgd_test")."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"{name} is not in the installed Keras {keras.__version__}: the shim needs it")
    copy = importlib.util.spec_from_file_location("coursekit_copy_of_" + name.replace(".", "_"), spec.origin)
    module = importlib.util.module_from_spec(copy)
    copy.loader.exec_module(module)
    return module


def with_names(module, **replaced):
    """A namespace with every public name of `module`, some of them replaced."""
    return types.SimpleNamespace(**{**vars(module), **replaced})


class SGD(abc.ABC):  # noqa: B024 (an ABC for `register`: the kit's classes are instances of it)
    """`keras.optimizers.SGD(learning_rate, momentum, nesterov, ...)` answered by the kit's classes."""

    def __new__(cls, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        if nesterov:
            return optimizers.Nesterov(learning_rate, momentum=momentum, **kwargs)
        if momentum:
            return optimizers.Momentum(learning_rate, momentum=momentum, **kwargs)
        return optimizers.SGD(learning_rate, **kwargs)


SGD.register(optimizers.SGD)
SGD.register(optimizers.Momentum)  # and so Nesterov, its subclass

KIT_BY_KERAS_NAME = {"sgd": SGD, "adam": optimizers.Adam}


def get_optimizer(identifier):
    """`keras.optimizers.get`, with "sgd" and "adam" (names or configs) answered by the kit's classes."""
    name = identifier.get("class_name") if isinstance(identifier, dict) else identifier
    kit_class = KIT_BY_KERAS_NAME.get(str(name).lower())
    if kit_class is None:
        return keras.optimizers.get(identifier)
    return kit_class(**(identifier.get("config", {}) if isinstance(identifier, dict) else {}))


def BatchNormalization(momentum=0.99, epsilon=1e-3, moving_variance_initializer="ones", synchronized=False, **kwargs):
    """`keras.layers.BatchNormalization` answered by the kit's BatchNorm, with Keras' defaults."""
    if synchronized:
        raise NotImplementedError("the kit's BatchNorm has no `synchronized` option")
    return BatchNorm(
        momentum=momentum, epsilon=epsilon, moving_variance_initializer=moving_variance_initializer, **kwargs
    )


def select(test_case, keep):
    """`test_case` (a Keras TestCase class) reduced to the test methods for which `keep(name, method)` is true."""
    namespace = {
        name: value
        for name, value in vars(test_case).items()
        if not name.startswith("__") and (not name.startswith("test") or keep(name, value))
    }
    return types.new_class(test_case.__name__, (testing.TestCase,), exec_body=lambda ns: ns.update(namespace))


def names_a_kit_optimizer(name, method):
    """False for a parameterized case of Keras' tests that names an optimizer the kit does not stand beside."""
    case = getattr(method, "__x_params_repr__", None)  # absl.testing.parameterized's record of the case, "('sgd')"
    return case is None or any(f"'{keras_name}'" in case for keras_name in KIT_BY_KERAS_NAME)


def named(*prefixes):
    return lambda name, method: name.startswith(prefixes)


sgd_test = keras_test_module("keras.src.optimizers.sgd_test")
sgd_test.SGD = SGD
adam_test = keras_test_module("keras.src.optimizers.adam_test")
adam_test.Adam = optimizers.Adam
optimizer_test = keras_test_module("keras.src.optimizers.optimizer_test")
optimizer_test.optimizers = with_names(optimizer_test.optimizers, SGD=SGD, Adam=optimizers.Adam, get=get_optimizer)
batch_normalization_test = keras_test_module("keras.src.layers.normalization.batch_normalization_test")
batch_normalization_test.layers = with_names(batch_normalization_test.layers, BatchNormalization=BatchNormalization)


class SGDTest(sgd_test.SGDTest):
    @pytest.mark.xfail(
        raises=AssertionError,
        strict=True,
        reason="Keras' exact wording; the kit says '`momentum` must be in [0, 1); received momentum=-1.0'",
    )
    def test_invalid_momentum(self):
        super().test_invalid_momentum()


AdamTest = adam_test.AdamTest
# Its tests over every Keras optimizer ("adamw", "lion", ...) run for "adam" and "sgd" only.
OptimizerTest = select(optimizer_test.OptimizerTest, names_a_kit_optimizer)
assert sum(name.startswith("test_pickleable_optimizers") for name in dir(OptimizerTest)) == len(KIT_BY_KERAS_NAME)

BATCHNORM_TESTS = (
    # masking
    "test_input_fully_masked",
    "test_bachnorm_ignore_masked_values",
    "test_masked_broadcast_normalization",
    # trainable (a frozen layer), the constructor's arguments, float16 autocast
    "test_trainable_behavior",
    "test_bn_basics",
    "test_large_value_within_autocast_scope",
)
BatchNormalizationTest = select(batch_normalization_test.BatchNormalizationTest, named(*BATCHNORM_TESTS))
assert all(any(name.startswith(test) for name in dir(BatchNormalizationTest)) for test in BATCHNORM_TESTS)
# 16 cases (6 s on TensorFlow, 15 s on JAX on the project's 2-core machine): with the long runs (`-m slow`).
BatchNormalizationCorrectnessTest = pytest.mark.slow(
    select(batch_normalization_test.BatchNormalizationTest, named("test_correctness"))
)
