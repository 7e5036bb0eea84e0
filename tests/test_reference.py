"""The NumPy oracle itself: hand-computed steps and a numerical check of its backward passes."""

import numpy as np
import pytest

from coursekit import reference


def step(optimizer, w=1.0, g=0.5):
    params = {"W": np.array([w])}
    optimizer.update(params, {"W": np.array([g])})
    return params["W"][0]


def test_hand_computed_first_steps():
    assert step(reference.SGD(0.1)) == pytest.approx(0.95)
    assert step(reference.Momentum(0.1, 0.9)) == pytest.approx(0.95)
    assert step(reference.AdaGrad(0.1)) == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-7))
    assert step(reference.Nesterov(0.1, 0.9)) == pytest.approx(1 - 1.9 * 0.05)


def test_momentum_second_step_accumulates_velocity():
    optimizer, params = reference.Momentum(0.1, 0.9), {"W": np.array([0.0])}
    for _ in range(2):
        optimizer.update(params, {"W": np.array([1.0])})
    assert params["W"][0] == pytest.approx(-0.1 - 0.19)


def numeric_grad(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + h
        plus = f()
        x[index] = old - h
        minus = f()
        x[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


def test_batchnorm_backward_matches_central_differences(rng):
    x, gamma, beta = rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=4)
    dout = rng.normal(size=(5, 4))

    def f():
        out, _ = reference.batchnorm_forward(x, gamma, beta, np.zeros(4), np.zeros(4), train=True)
        return np.sum(out * dout)

    _, cache = reference.batchnorm_forward(x, gamma, beta, np.zeros(4), np.zeros(4), train=True)
    dx, dgamma, dbeta = reference.batchnorm_backward(dout, cache)
    for analytic, wrt in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(analytic, numeric_grad(f, wrt), rtol=1e-5, atol=1e-7)


def test_multilayernet_gradients_match_central_differences(rng):
    net = reference.MultiLayerNet([6, 5, 3], rng, weight_decay_lambda=0.1)
    x, labels = rng.normal(size=(4, 6)), np.array([0, 1, 2, 1])
    _, grads = net.loss_and_grads(x, labels)
    for key, value in net.params.items():
        numeric = numeric_grad(lambda: net.loss_and_grads(x, labels)[0], value)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-4, atol=1e-6, err_msg=key)


def test_dropout_forward(rng):
    x = np.ones((100, 100))
    out, mask = reference.dropout_forward(x, 0.2, train=True, rng=rng)
    assert set(np.unique(out)) <= {0.0, 1.0} and abs(mask.mean() - 0.8) < 0.02
    out, _ = reference.dropout_forward(x, 0.2, train=False, rng=rng)
    np.testing.assert_allclose(out, 0.8)
