"""The book's `MultiLayerNet` (ReLU, He weights, weight decay) as its layers compute it, in float64.

The baseline of the benchmarks that compare the kit with the book's NumPy code
(`search.py`, `optimizer_compare.py`): every Affine layer's backward also computes dx (the
first one's included), and the loss always adds 0.5 * lambda * sum(W^2), as the book's code
does. `coursekit.reference` is the lean version (no dx of the first layer).
"""

import numpy as np


class BookNet:
    """The book's MultiLayerNet (ReLU, He weights, weight decay) as its layers compute it, in float64."""

    def __init__(self, sizes, lam, rng):
        self.lam = lam
        self.weights = [rng.standard_normal((m, n)) * np.sqrt(2.0 / m) for m, n in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(n) for n in sizes[1:]]

    def forward(self, x):
        """Logits and the input of every Affine layer."""
        inputs = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            inputs.append(x)
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0)
        return x, inputs

    def loss(self, x, t):
        """Softmax cross-entropy plus 0.5 * lambda * sum(W^2); also returns dL/dlogits and the layer inputs."""
        logits, inputs = self.forward(x)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(t))
        loss = -np.mean(np.log(p[rows, t] + 1e-7)) + 0.5 * self.lam * sum(np.sum(w**2) for w in self.weights)
        p[rows, t] -= 1
        return loss, p / len(t), inputs

    def gradient(self, x, t):
        _, dout, inputs = self.loss(x, t)
        grads = []
        for i in reversed(range(len(self.weights))):
            grads.append((inputs[i].T @ dout + self.lam * self.weights[i], dout.sum(axis=0)))
            dout = dout @ self.weights[i].T  # Affine.backward: dx, for the first layer too
            if i > 0:
                dout = dout * (inputs[i] > 0)  # Relu.backward
        return grads[::-1]

    def accuracy(self, x, t):
        return np.mean(np.argmax(self.forward(x)[0], axis=1) == t)

    def params(self):
        """The arrays by the book's names (W1, b1, ...): the reference optimizers update them in place."""
        names = {f"W{i}": w for i, w in enumerate(self.weights, 1)}
        return {**names, **{f"b{i}": b for i, b in enumerate(self.biases, 1)}}

    @staticmethod
    def named(grads):
        """`gradient()`'s list of (dW, db) by the same names as `params()`."""
        return {
            **{f"W{i}": dw for i, (dw, _) in enumerate(grads, 1)},
            **{f"b{i}": db for i, (_, db) in enumerate(grads, 1)},
        }
