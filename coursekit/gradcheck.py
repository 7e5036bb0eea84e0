"""Gradients by the backend's autodiff and by central differences, and their relative error."""

import keras
import numpy as np


def autodiff_gradients(loss_fn, variables):
    """d loss_fn() / d v for each Keras variable `v`, by the active backend's autodiff.

    `loss_fn` takes no arguments and returns a scalar tensor computed from `variables`.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, [v.value for v in variables])
    elif backend == "jax":
        import jax

        def pure_loss(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn()

        grads = jax.grad(pure_loss)([v.value for v in variables])
    elif backend == "torch":
        import torch

        loss = loss_fn()
        grads = torch.autograd.grad(loss, [v.value for v in variables])
        grads = [g.detach().cpu() for g in grads]
    else:
        raise ValueError(f"autodiff_gradients does not support the {backend!r} backend")
    return [np.asarray(g) for g in grads]


def numerical_gradients(loss_fn, variables, h=1e-5, indices=None):
    """Central differences (f(v + h) - f(v - h)) / 2h, element by element, for each variable.

    `indices` (one list of index tuples per variable) limits the work to those
    elements; the others stay 0 in the returned arrays.
    """
    grads = []
    for number, variable in enumerate(variables):
        original = np.array(variable.numpy())
        grad = np.zeros_like(original)
        chosen = np.ndindex(original.shape) if indices is None else indices[number]
        for index in chosen:
            for sign in (1, -1):
                shifted = original.copy()
                shifted[index] += sign * h
                variable.assign(shifted)
                grad[index] += sign * float(keras.ops.convert_to_numpy(loss_fn()))
            grad[index] /= 2 * h
        variable.assign(original)
        grads.append(grad)
    return grads


def relative_error(a, b, floor=1e-8):
    """max over elements of |a - b| / max(|a| + |b|, floor) (cs231n's measure).

    The floor keeps gradients that are exactly zero in theory (a bias right before
    BatchNorm) from turning round-off of 1e-16 into a large relative error.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def sample_indices(shape, count, rng):
    """Up to `count` distinct element indices of an array of `shape`, drawn with `rng`."""
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(count, size), replace=False)
    return [np.unravel_index(i, shape) for i in flat]
