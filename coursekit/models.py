"""The course's multi-layer nets (the reference MultiLayerNet / MultiLayerNetExtend) as Keras models."""

import keras

from coursekit import initializers
from coursekit.checks import check_fraction, check_non_negative
from coursekit.layers import BatchNorm, Dropout
from coursekit.regularizers import WeightDecay


def multilayer_net(
    input_size,
    hidden_sizes,
    output_size=10,
    *,
    activation="relu",
    weight_init="he",
    batch_norm=False,
    dropout_rate=0.0,
    weight_decay=0.0,
    inverted_dropout=False,
    seed=None,
    name="multilayer_net",
):
    """A fully connected net: each hidden layer Dense -> BatchNorm -> activation -> Dropout.

    The output layer is a Dense of `output_size` logits (softmax lives in the loss).
    Every Dense kernel, the output layer's included, gets the same initial-weight rule
    and the weight decay `0.5 * weight_decay * sum(W**2)`; biases start at 0, undecayed.

    Args:
        input_size: Features per example (784 for MNIST).
        hidden_sizes: Units of each hidden layer, e.g. `[100] * 4`.
        output_size: Number of classes. Defaults to `10`.
        activation: Hidden activation ("relu", "sigmoid", "tanh"). Defaults to `"relu"`.
        weight_init: An `Initializer`, a name ("he", "xavier", "relu", "sigmoid") or a
            number (a fixed standard deviation). Defaults to `"he"`.
        batch_norm: Insert `BatchNorm` after each hidden Dense. Defaults to `False`.
        dropout_rate: Course `Dropout` rate after each hidden activation (0 = none).
        weight_decay: Lambda of the course's weight decay (0 = none).
        inverted_dropout: Use Keras' inverted dropout instead. Defaults to `False`.
        seed: Seed of the initial weights and dropout masks. Defaults to `None`.
        name: Model name.
    """
    hidden_sizes = list(hidden_sizes)
    if any(int(units) < 1 for units in hidden_sizes) or int(input_size) < 1 or int(output_size) < 1:
        raise ValueError(
            f"layer sizes must be positive integers; received input_size={input_size}, "
            f"hidden_sizes={hidden_sizes}, output_size={output_size}"
        )
    check_fraction("dropout_rate", dropout_rate)
    check_non_negative("weight_decay", weight_decay)
    keras.activations.get(activation)  # fails early with Keras' message on a bad name
    regularizer = WeightDecay(weight_decay) if weight_decay else None

    def seed_for(index):
        return None if seed is None else int(seed) * 1000 + index

    def dense(units, index, layer_name):
        return keras.layers.Dense(
            units,
            kernel_initializer=initializers.get(weight_init, seed=seed_for(index)),
            kernel_regularizer=regularizer,
            name=layer_name,
        )

    layers = [keras.Input((int(input_size),), name="pixels")]
    for index, units in enumerate(hidden_sizes, start=1):
        layers.append(dense(int(units), index, f"dense_{index}"))
        if batch_norm:
            layers.append(BatchNorm(name=f"batch_norm_{index}"))
        layers.append(keras.layers.Activation(activation, name=f"{activation}_{index}"))
        if dropout_rate:
            layers.append(
                Dropout(dropout_rate, inverted=inverted_dropout, seed=seed_for(100 + index), name=f"dropout_{index}")
            )
    layers.append(dense(int(output_size), len(hidden_sizes) + 1, "logits"))
    return keras.Sequential(layers, name=name)


def classification_loss():
    """Softmax cross-entropy on integer labels and logits (the reference SoftmaxWithLoss)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
