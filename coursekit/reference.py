"""The chapter's formulas in plain NumPy: the "from scratch" column.

Written straight from the course (Saito, *Deep Learning from Scratch*, ch. 6),
in float64 unless the inputs say otherwise. These are the oracle the Keras
components in `coursekit` are tested against, and the baseline the benchmarks
time. Every optimizer has the reference interface `update(params, grads)` over
dicts of arrays, updating `params` in place.
"""

import numpy as np

# ----------------------------------------------------------------------------
# Parameter updates
# ----------------------------------------------------------------------------


class SGD:
    """W -= lr * g"""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum:
    """v = momentum * v - lr * g; W += v"""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    """W += momentum**2 * v; W -= (1 + momentum) * lr * g; v = momentum * v - lr * g"""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]


class AdaGrad:
    """h += g * g; W -= lr * g / (sqrt(h) + epsilon)"""

    def __init__(self, lr=0.01, initial_accumulator_value=0.0, epsilon=1e-7):
        self.lr, self.h0, self.epsilon, self.h = lr, initial_accumulator_value, epsilon, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.full_like(val, self.h0) for key, val in params.items()}
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + self.epsilon)


class RMSprop:
    """h = rho * h + (1 - rho) * g * g; W -= lr * g / (sqrt(h) + epsilon)"""

    def __init__(self, lr=0.01, rho=0.99, epsilon=1e-7):
        self.lr, self.rho, self.epsilon, self.h = lr, rho, epsilon, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.h[key] *= self.rho
            self.h[key] += (1 - self.rho) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + self.epsilon)


class Adam:
    """t += 1; lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t);
    m += (1 - beta_1) * (g - m); v += (1 - beta_2) * (g * g - v);
    W -= lr_t * m / (sqrt(v) + epsilon)"""

    def __init__(self, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.lr, self.beta_1, self.beta_2, self.epsilon = lr, beta_1, beta_2, epsilon
        self.iter, self.m, self.v = 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta_2**self.iter) / (1.0 - self.beta_1**self.iter)
        for key in params:
            self.m[key] += (1 - self.beta_1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta_2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + self.epsilon)


OPTIMIZERS = {
    "SGD": SGD,
    "Momentum": Momentum,
    "Nesterov": Nesterov,
    "AdaGrad": AdaGrad,
    "RMSprop": RMSprop,
    "Adam": Adam,
}


def optimizer_kwargs(keras_kwargs):
    """The reference constructor's arguments for a Keras optimizer's: `learning_rate` is `lr` here."""
    return {("lr" if key == "learning_rate" else key): value for key, value in keras_kwargs.items()}


def gradient_steps(optimizer, start, grads):
    """Apply each step of `grads` (a list of arrays shaped like `start`) to a float64 copy of `start`.

    Returns the parameter values after each step, one list of arrays per step.
    """
    params = {str(i): value.astype(np.float64) for i, value in enumerate(start)}
    history = []
    for step_grads in grads:
        optimizer.update(params, {str(i): g.astype(np.float64) for i, g in enumerate(step_grads)})
        history.append([params[str(i)].copy() for i in range(len(start))])
    return history


# ----------------------------------------------------------------------------
# Initial weights
# ----------------------------------------------------------------------------


def xavier_std(fan_in):
    """Xavier's standard deviation: 1 / sqrt(fan_in)."""
    return 1.0 / np.sqrt(fan_in)


def he_std(fan_in):
    """He's standard deviation: sqrt(2 / fan_in)."""
    return np.sqrt(2.0 / fan_in)


def init_weight(shape, std, rng):
    """An untruncated normal weight: std * randn(*shape)."""
    return std * rng.standard_normal(shape)


# ----------------------------------------------------------------------------
# Batch Normalization, Dropout, weight decay
# ----------------------------------------------------------------------------


def batchnorm_forward(x, gamma, beta, running_mean, running_var, *, train, momentum=0.9, eps=1e-6):
    """Batch Normalization of `x` (N, D); returns (out, cache).

    Training: mu = mean(x), var = mean((x - mu)**2), x_hat = (x - mu) / sqrt(var + eps),
    out = gamma * x_hat + beta, and the running statistics are updated in place:
    running = momentum * running + (1 - momentum) * batch.
    Inference: the running statistics replace mu and var.
    """
    if train:
        mu = x.mean(axis=0)
        xc = x - mu
        var = np.mean(xc**2, axis=0)
        std = np.sqrt(var + eps)
        x_hat = xc / std
        running_mean *= momentum
        running_mean += (1 - momentum) * mu
        running_var *= momentum
        running_var += (1 - momentum) * var
        cache = (xc, std, x_hat, gamma)
    else:
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        cache = None
    return gamma * x_hat + beta, cache


def batchnorm_backward(dout, cache):
    """Gradients (dx, dgamma, dbeta) of training-mode `batchnorm_forward`."""
    xc, std, x_hat, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(x_hat * dout, axis=0)
    dxn = gamma * dout
    dxc = dxn / std
    dstd = -np.sum((dxn * xc) / (std * std), axis=0)
    dvar = 0.5 * dstd / std
    dxc += (2.0 / n) * xc * dvar
    dmu = np.sum(dxc, axis=0)
    dx = dxc - dmu / n
    return dx, dgamma, dbeta


def dropout_forward(x, ratio, *, train, rng):
    """Course dropout; returns (out, mask). Training: x * (uniform > ratio). Inference: x * (1 - ratio)."""
    if train:
        mask = rng.random(x.shape) > ratio
        return x * mask, mask
    return x * (1.0 - ratio), None


def weight_decay_loss(weights, lam):
    """0.5 * lam * sum(W**2) over every weight matrix in `weights`."""
    return 0.5 * lam * sum(np.sum(w**2) for w in weights)


# ----------------------------------------------------------------------------
# The reference network: MultiLayerNet (ReLU, softmax cross-entropy)
# ----------------------------------------------------------------------------


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels; returns (loss, dlogits)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.mean(np.log(probs[np.arange(n), labels] + 1e-7))
    dlogits = probs.copy()
    dlogits[np.arange(n), labels] -= 1
    return loss, dlogits / n


class MultiLayerNet:
    """The reference fully connected ReLU net with He init and optional weight decay.

    `params` holds `W1, b1, ..., WL, bL`; `loss_and_grads(x, t)` does one forward and
    backward pass and returns (loss, grads) with the weight-decay terms included.
    """

    def __init__(self, sizes, rng, weight_decay_lambda=0.0, dtype=np.float64):
        self.lam = weight_decay_lambda
        self.n_layers = len(sizes) - 1
        self.params = {}
        for i in range(self.n_layers):
            std = he_std(sizes[i])
            self.params[f"W{i + 1}"] = init_weight((sizes[i], sizes[i + 1]), std, rng).astype(dtype)
            self.params[f"b{i + 1}"] = np.zeros(sizes[i + 1], dtype=dtype)

    def predict(self, x):
        for i in range(1, self.n_layers + 1):
            x = x @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.n_layers:
                x = np.maximum(x, 0)
        return x

    def accuracy(self, x, labels):
        return float(np.mean(np.argmax(self.predict(x), axis=1) == labels))

    def loss_and_grads(self, x, labels):
        activations = [x]
        h = x
        for i in range(1, self.n_layers + 1):
            h = h @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.n_layers:
                h = np.maximum(h, 0)
                activations.append(h)
        weights = [self.params[f"W{i}"] for i in range(1, self.n_layers + 1)]
        loss, grad = softmax_cross_entropy(h, labels)
        loss += weight_decay_loss(weights, self.lam)
        grads = {}
        for i in range(self.n_layers, 0, -1):
            inputs = activations[i - 1]
            grads[f"W{i}"] = inputs.T @ grad + self.lam * self.params[f"W{i}"]
            grads[f"b{i}"] = grad.sum(axis=0)
            if i > 1:
                grad = (grad @ self.params[f"W{i}"].T) * (inputs > 0)
        return loss, grads
