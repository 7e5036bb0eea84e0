"""Optimizers on MNIST: SGD, Momentum, AdaGrad and Adam training the same network.

Four copies of a 784-[100]x4-10 ReLU network with He initial weights, one per
optimizer at its default learning rate, see the same minibatches of 128 for
2,000 iterations. The smoothed loss curves show SGD learning slowest.
"""

import sys

from coursekit import optimizers
from coursekit.experiment import Lab, loss_comparison, main
from coursekit.models import multilayer_net
from coursekit.training import Variant

OPTIMIZERS = ("SGD", "Momentum", "AdaGrad", "Adam")
PRESETS = {
    "full": {"hidden_sizes": [100] * 4, "batch_size": 128, "iterations": 2000, "train_size": None},
    "smoke": {"hidden_sizes": [100] * 4, "batch_size": 128, "iterations": 300, "train_size": None},
}


def run(ctx):
    settings = ctx.settings
    dataset = ctx.load_dataset(train_size=settings["train_size"])

    # ## One network per optimizer, identical initial weights.
    variants = [
        Variant(
            name, multilayer_net(dataset.num_features, settings["hidden_sizes"], seed=ctx.seed), optimizers.get(name)
        )
        for name in OPTIMIZERS
    ]

    # ## Train side by side on the same minibatches; plot the smoothed losses.
    return loss_comparison(ctx, dataset, variants, title="optimizer comparison")


LAB = Lab(
    "optimizer_compare_mnist", "SGD vs Momentum vs AdaGrad vs Adam on a 784-[100]x4-10 net, same batches", PRESETS, run
)

if __name__ == "__main__":
    sys.exit(main(LAB))
