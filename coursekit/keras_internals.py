"""The one place where coursekit relies on Keras internals (`keras.src`); tests/test_keras_internals.py checks them.

TensorFlow's optimizer refuses `stateless_apply` ("incompatible with tf.distribute") and
writes its updates into the TensorFlow variables directly (`assign*`, its
`_backend_update_step` and `_apply_weight_decay` go through `tf.distribute`). Keras' own
backend-independent implementation of the same methods, `BaseOptimizer`, is stateless inside
a `keras.StatelessScope`; `tensorflow_stateless_apply` uses it for the duration of one call.
It serves the compiled engine (`coursekit.population`), where there is one replica.
"""

import contextlib
import types

from keras.src.optimizers.base_optimizer import BaseOptimizer

# The TensorFlow optimizer's overrides replaced by BaseOptimizer's for a stateless apply.
STATELESS_METHODS = (
    "stateless_apply",
    "assign",
    "assign_add",
    "assign_sub",
    "_var_key",
    "_backend_update_step",
    "_apply_weight_decay",
)


@contextlib.contextmanager
def _base_methods(optimizer):
    """Route `STATELESS_METHODS` of `optimizer` to BaseOptimizer's, re-keying its variable index to match."""
    indices = optimizer._trainable_variables_indices
    for name in STATELESS_METHODS:
        setattr(optimizer, name, types.MethodType(getattr(BaseOptimizer, name), optimizer))
    optimizer._trainable_variables_indices = {id(v): i for i, v in enumerate(optimizer._trainable_variables)}
    try:
        yield
    finally:
        for name in STATELESS_METHODS:
            delattr(optimizer, name)
        optimizer._trainable_variables_indices = indices


def tensorflow_stateless_apply(optimizer, optimizer_variables, grads, trainable_variables):
    """`optimizer.stateless_apply` on TensorFlow: `(new trainable values, new optimizer variable values)`."""
    with _base_methods(optimizer):
        return optimizer.stateless_apply(optimizer_variables, grads, trainable_variables)
