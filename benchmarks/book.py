"""The NumPy baselines of the benchmarks that compare the kit with NumPy code (`search.py`,
`optimizer_compare.py`), in float64.

- `BookNet` and `book_step`: the book's `MultiLayerNet` (ReLU, He weights, weight decay) as
  its layers compute it, trained as its `Trainer` does: every Affine layer's backward also
  computes dx (the first one's included), the loss always adds 0.5 * lambda * sum(W^2), and
  the batch loss is computed again after the update (the Trainer records it).
- `lean_step`: `coursekit.reference.MultiLayerNet`, the least NumPy can do (no dx of the
  first layer, no second loss).

Both steps take an optimizer of `coursekit.reference` (`update(params, grads)` in place).
"""

import numpy as np


class BookNet:
    """The book's MultiLayerNet (ReLU, He weights, weight decay), its arrays in `params` by the book's names."""

    def __init__(self, sizes, lam, rng):
        self.lam, self.depth = lam, len(sizes) - 1
        weights = [rng.standard_normal((m, n)) * np.sqrt(2.0 / m) for m, n in zip(sizes[:-1], sizes[1:])]
        self.params = {}
        for i, (w, n) in enumerate(zip(weights, sizes[1:]), 1):
            self.params[f"W{i}"], self.params[f"b{i}"] = w, np.zeros(n)

    def forward(self, x):
        """Logits and the input of every Affine layer."""
        inputs = []
        for i in range(1, self.depth + 1):
            inputs.append(x)
            x = x @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.depth:
                x = np.maximum(x, 0)
        return x, inputs

    def loss(self, x, t):
        """Softmax cross-entropy plus 0.5 * lambda * sum(W^2); also returns dL/dlogits and the layer inputs."""
        logits, inputs = self.forward(x)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(t))
        decay = sum(np.sum(self.params[f"W{i}"] ** 2) for i in range(1, self.depth + 1))
        loss = -np.mean(np.log(p[rows, t] + 1e-7)) + 0.5 * self.lam * decay
        p[rows, t] -= 1
        return loss, p / len(t), inputs

    def gradient(self, x, t):
        """The gradients by the names of `params`."""
        _, dout, inputs = self.loss(x, t)
        grads = {}
        for i in range(self.depth, 0, -1):
            w = self.params[f"W{i}"]
            grads[f"W{i}"], grads[f"b{i}"] = inputs[i - 1].T @ dout + self.lam * w, dout.sum(axis=0)
            dout = dout @ w.T  # Affine.backward: dx, for the first layer too
            if i > 1:
                dout = dout * (inputs[i - 1] > 0)  # Relu.backward
        return grads

    def accuracy(self, x, t):
        return np.mean(np.argmax(self.forward(x)[0], axis=1) == t)


def book_step(net, optimizer, x, t):
    """One update of a `BookNet` as the book's Trainer runs it: gradient, update, then the loss again."""
    optimizer.update(net.params, net.gradient(x, t))
    return net.loss(x, t)[0]


def lean_step(net, optimizer, x, t):
    """One update of a `coursekit.reference.MultiLayerNet`: loss and gradients in one pass, then the update."""
    loss, grads = net.loss_and_grads(x, t)
    optimizer.update(net.params, grads)
    return loss
