"""Initial weights on MNIST: std 0.01 vs Xavier vs He for a ReLU network.

Three copies of a 784-[100]x4-10 ReLU network differ only in their initial
weights and train with SGD (learning rate 0.01) on the same minibatches. With
std 0.01 the signal dies out layer by layer and the loss stays near
ln(10) = 2.30; He, made for ReLU, learns fastest.
"""

import sys

from coursekit import optimizers
from coursekit.experiment import Lab, loss_comparison, main
from coursekit.initializers import He, Normal, Xavier
from coursekit.models import multilayer_net
from coursekit.training import Variant

INITIALIZERS = {"std=0.01": lambda seed: Normal(0.01, seed=seed), "Xavier": Xavier, "He": He}
PRESETS = {
    "full": {
        "hidden_sizes": [100] * 4,
        "batch_size": 128,
        "iterations": 2000,
        "learning_rate": 0.01,
        "train_size": None,
    },
    "smoke": {
        "hidden_sizes": [100] * 4,
        "batch_size": 128,
        "iterations": 400,
        "learning_rate": 0.01,
        "train_size": None,
    },
}


def run(ctx):
    settings = ctx.settings
    dataset = ctx.load_dataset(train_size=settings["train_size"])

    # ## One network per initial-weight rule.
    variants = [
        Variant(
            name,
            multilayer_net(
                dataset.num_features, settings["hidden_sizes"], weight_init=make(seed=ctx.seed), seed=ctx.seed
            ),
            optimizers.SGD(settings["learning_rate"]),
        )
        for name, make in INITIALIZERS.items()
    ]

    # ## Train side by side on the same minibatches; plot the smoothed losses.
    return loss_comparison(ctx, dataset, variants, title="initial weights (ReLU)", ylim=(0, 2.5))


LAB = Lab("weight_init_compare", "std 0.01 vs Xavier vs He initial weights on a ReLU 784-[100]x4-10 net", PRESETS, run)

if __name__ == "__main__":
    sys.exit(main(LAB))
