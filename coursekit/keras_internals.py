"""The one place where coursekit relies on Keras internals (`keras.src` and private attributes).

tests/test_keras_internals.py holds every one of them against Keras' own behaviour, so that a
Keras release that changes them fails loudly there. What lives here, and why there is no
public way:

- `base_stateless_apply`: TensorFlow's optimizer refuses `stateless_apply` ("incompatible
  with tf.distribute") and writes its updates into the TensorFlow variables directly
  (`assign*`, its `_backend_update_step` and `_apply_weight_decay` go through
  `tf.distribute`); PyTorch's Keras optimizers update all variables at once with in-place
  `torch._foreach_*` ops, which `torch.func.vmap` cannot batch. Keras' own
  backend-independent implementation of the same methods, `BaseOptimizer`, is stateless
  inside a `keras.StatelessScope`; this uses it for the duration of one call. It serves the
  compiled engine (`coursekit.population`), where there is one replica.
- `compute_loss`, `update_metrics`, `metric_results`, `build_for_training`: the pieces of
  Keras' own trainers (`keras/src/backend/jax/trainer.py`, written over the stateless API)
  that the engine's training step repeats on every backend: the forward pass's losses handed
  to `compute_loss` (`Layer._losses_override`), the loss tracker (`Trainer._loss_tracker`)
  and the symbolic build of the compiled loss and metrics before training
  (`Trainer._symbolic_build`).
- `tensor_rate_dropout`: Keras' `Dropout.call` tests `self.rate > 0` in Python, which a
  per-member rate (a tensor inside a compiled population) cannot answer; the same call
  without that test.
- `seeded_draws` (PyTorch): Keras draws a seeded random number on PyTorch from a
  `torch.Generator` seeded with the seed's value (`torch_seed_generator` calls `int()` on it),
  which neither a trace on fake tensors nor `torch.func.vmap` can do. Inside the block,
  `keras.random.uniform` from a seed (the course's `Dropout`) and `tensor_rate_dropout`'s mask
  draw through one custom op, `coursekit::seeded_draw`: in a trace it is one opaque node, under
  `vmap` it draws member by member, and when it runs it makes the generator with Keras' own
  `torch_seed_generator` (the same numbers as Keras draws).
- `keep_float64`: Keras' type promotion (`keras.src.backend.common.dtypes.result_type`, which
  `ops.matmul` uses on PyTorch) turns every float64 result into float32 on backends other than
  TensorFlow, "to be aligned with JAX's default", even under a float64 policy; a float64
  gradient check (`coursekit.runtime.float64`) needs float64 kept for its duration.
"""

import contextlib
import functools
import types

import keras
from keras.src.backend.common import dtypes as keras_dtypes
from keras.src.optimizers.base_optimizer import BaseOptimizer
from keras.src.random.seed_generator import SeedGenerator, draw_seed

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

# Class attributes used here (tests/test_keras_internals.py fails if one disappears; the instance
# attributes, `_trainable_variables_indices`, `_losses_override` and `_loss_tracker`, are held by its other tests).
USED = (
    *((BaseOptimizer, name) for name in STATELESS_METHODS),
    (keras.Model, "_symbolic_build"),
    (keras.Model, "stateless_compute_loss"),
    (keras.Model, "get_metrics_result"),
    (keras_dtypes, "BIT64_TO_BIT32_DTYPE"),
)


@contextlib.contextmanager
def keep_float64():
    """Inside the block, Keras' type promotion keeps float64 (it maps float64 to float32 outside it)."""
    demotions = keras_dtypes.BIT64_TO_BIT32_DTYPE
    previous = demotions.get("float64")
    demotions["float64"] = "float64"
    try:
        yield
    finally:
        demotions["float64"] = previous


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


def base_stateless_apply(optimizer, optimizer_variables, grads, trainable_variables):
    """`optimizer.stateless_apply` through Keras' backend-independent methods (TensorFlow, PyTorch).

    Returns `(new trainable values, new optimizer variable values)`.
    """
    with _base_methods(optimizer):
        return optimizer.stateless_apply(optimizer_variables, grads, trainable_variables)


def compute_loss(model, trainable, non_trainable, metrics_variables, x, y, y_pred, losses, training):
    """The model's total loss as `fit` computes it: `(loss, non_trainable, metrics_variables)`.

    `losses` are the ones the forward pass returned (`stateless_call(..., return_losses=True)`:
    weight penalties and `add_loss` terms); `compute_loss` adds them to the compiled loss.
    """
    if losses:
        model._losses_override.clear()
        model._losses_override = losses
    try:
        loss, (_, non_trainable, metrics_variables) = model.stateless_compute_loss(
            trainable, non_trainable, metrics_variables, x=x, y=y, y_pred=y_pred, training=training
        )
    finally:
        if losses:
            model._losses_override.clear()
    return loss, non_trainable, metrics_variables


def update_metrics(model, metrics_variables, loss, x, y, y_pred):
    """The metrics variables after one batch: the loss tracker (weighted by the batch size) and the compiled metrics."""
    with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metrics_variables))) as scope:
        rows = keras.ops.shape(keras.tree.flatten(x)[0])[0]  # dynamic: a trace may leave the batch size unknown
        model._loss_tracker.update_state(loss, sample_weight=rows)
        model.compute_metrics(x, y, y_pred, sample_weight=None)
    values = []
    for variable, value in zip(model.metrics_variables, metrics_variables):
        new = scope.get_current_value(variable)
        values.append(value if new is None else new)
    return values


def metric_results(model, metrics_variables):
    """`{name: scalar}` of `model.get_metrics_result()` read from `metrics_variables` (what `fit` logs)."""
    with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metrics_variables))):
        results = model.get_metrics_result()
    return {name: keras.ops.cast(value, "float32") for name, value in sorted(results.items())}


def build_for_training(model, x, y):
    """Build the model, its compiled loss and metrics and its optimizer for batches like `(x, y)`, as `fit` does first."""
    model._symbolic_build(data_batch=(x, y, None))


def tensor_rate_dropout(layer):
    """Keras `Dropout.call` for a rate that is a tensor (nonzero, below 1: other rates are structural).

    The same draws and arithmetic as Keras' backend `dropout` (whose first lines test
    `rate == 1.0` and `rate == 0.0` in Python): JAX's Bernoulli mask and TensorFlow's
    `stateless_dropout`, from the layer's seed generator. On PyTorch, Keras draws the mask of a
    Dropout created without a seed from torch's global generator, so that in a population each
    member's masks would depend on the others; here it takes Keras' own seeded path, from the
    layer's seed generator (its state seeded at construction like every Keras seed): a trial's
    masks are its own, and equal `fit`'s when the layer has a seed. (On PyTorch the mask is drawn
    by `seeded_draws`' custom op: the same Bernoulli draw, traceable and vectorized.)
    """
    name = keras.backend.backend()

    def call(inputs, training=False):
        if not training:
            return inputs
        if name == "jax":
            import jax
            from keras.src.backend.jax import random as jax_random

            keep = 1.0 - layer.rate
            shape = jax_random._get_concrete_noise_shape(inputs, layer.noise_shape)
            mask = jax.random.bernoulli(jax_random.jax_draw_seed(layer.seed_generator), p=keep, shape=shape)
            mask = jax.numpy.broadcast_to(mask, inputs.shape)
            return jax.lax.select(mask, inputs / keep, jax.numpy.zeros_like(inputs))
        if name == "tensorflow":
            import tensorflow as tf
            from keras.src.backend.tensorflow import random as tf_random

            shape = tf_random._get_concrete_noise_shape(inputs, layer.noise_shape)
            seed = tf_random._cast_seed(draw_seed(layer.seed_generator))
            return tf.nn.experimental.stateless_dropout(inputs, rate=layer.rate, noise_shape=shape, seed=seed)
        if name == "torch":
            import torch
            from keras.src.backend.torch import random as torch_random

            keep = 1.0 - layer.rate
            shape = torch_random._get_concrete_noise_shape(inputs, layer.noise_shape)
            matrix = torch.ones(shape, device=inputs.device) * keep
            mask = _seeded_draw_op()(draw_seed(layer.seed_generator), matrix, True).bool()
            mask = torch.broadcast_to(mask, inputs.shape)
            return torch.where(mask, inputs / keep, torch.zeros_like(inputs, dtype=inputs.dtype))
        return keras.random.dropout(inputs, layer.rate, noise_shape=layer.noise_shape, seed=layer.seed_generator)

    return call


class _DrawnSeed(SeedGenerator):
    """A seed pair already drawn (a tensor), as Keras' `torch_seed_generator` takes a seed."""

    def __init__(self, pair):  # no state variable: the pair was drawn from one
        self.pair = pair

    def next(self, ordered=True):
        return self.pair


@functools.cache
def _seeded_draw_op():
    """The custom op `coursekit::seeded_draw(seed, like, bernoulli)`, registered once per process.

    `torch.bernoulli(like)` (a mask with `like`'s probabilities) or, with `bernoulli` false,
    `torch.rand` of `like`'s shape and dtype, from the generator Keras makes of the seed pair.
    """
    import torch
    from keras.src.backend.torch import random as torch_random

    @torch.library.custom_op("coursekit::seeded_draw", mutates_args=())
    def seeded_draw(seed: torch.Tensor, like: torch.Tensor, bernoulli: bool) -> torch.Tensor:
        generator = torch_random.torch_seed_generator(_DrawnSeed(seed))
        if bernoulli:
            return torch.bernoulli(like, generator=generator)
        return torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device)

    @seeded_draw.register_fake
    def _(seed, like, bernoulli):
        return torch.empty_like(like)

    @seeded_draw.register_vmap
    def _(info, in_dims, seed, like, bernoulli):
        def member(tensor, axis, index):
            return tensor if axis is None else tensor.select(axis, index)

        draws = [
            seeded_draw(member(seed, in_dims[0], i), member(like, in_dims[1], i), bernoulli)
            for i in range(info.batch_size)
        ]
        return torch.stack(draws), 0

    return seeded_draw


def _seeded_uniform(original, shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Keras' PyTorch `uniform`, its draw from a seed through `coursekit::seeded_draw`."""
    import torch
    from keras.src.backend.torch.core import get_device, to_torch_dtype

    if seed is None or get_device() == "meta":  # the global generator; a symbolic shape
        return original(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)
    like = torch.empty(tuple(shape) or (1,), dtype=to_torch_dtype(dtype or keras.config.floatx()), device=get_device())
    output = (maxval - minval) * _seeded_draw_op()(draw_seed(seed), like, False) + minval
    return output if len(shape) else output[0]


@contextlib.contextmanager
def seeded_draws():
    """Inside the block (PyTorch), `keras.random.uniform` from a seed draws through `coursekit::seeded_draw`."""
    from keras.src.backend.torch import random as torch_random

    original = torch_random.uniform
    torch_random.uniform = functools.partial(_seeded_uniform, original)
    try:
        yield
    finally:
        torch_random.uniform = original
