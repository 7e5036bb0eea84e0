"""Weight decay as the course writes it, a Keras regularizer."""

import keras
from keras import ops

from coursekit.checks import check_non_negative


@keras.saving.register_keras_serializable(package="coursekit")
class WeightDecay(keras.regularizers.Regularizer):
    """L2 weight decay: `penalty = 0.5 * lam * sum(W**2)`, gradient `lam * W`.

    Put it on every weight matrix (the output layer's too), never on biases or
    BatchNorm's gamma/beta. Keras' `L2(l)` is `l * sum(W**2)`, without the 0.5:
    `WeightDecay(lam)` equals `keras.regularizers.L2(lam / 2)`.

    Args:
        lam: Float >= 0, the decay strength lambda. Defaults to `0.0`.
    """

    def __init__(self, lam=0.0):
        self.lam = float(check_non_negative("lam", lam))

    def __call__(self, weights):
        # >>> exercise weight_decay
        # TODO: return the penalty 0.5 * lam * sum(W**2) (self.lam; keras.ops only).
        return 0.5 * self.lam * ops.sum(ops.square(weights))
        # <<< exercise weight_decay

    def get_config(self):
        return {"lam": self.lam}
