"""Overfitting and Dropout: the same big network on 300 images, with and without Dropout.

The 784-[100]x6-10 network of the weight-decay lab, trained on the first 300
images for 301 epochs, once plainly and once with Dropout (ratio 0.2) after every
hidden activation: in training each unit is dropped with probability 0.2, at
inference every output is scaled by 0.8. Dropout slows the fit of the training
set and narrows the train/test gap.
"""

import sys

from coursekit import optimizers
from coursekit.experiment import Lab, main, overfitting_comparison
from coursekit.models import multilayer_net
from coursekit.training import Variant

PRESETS = {
    "full": {
        "train_size": 300,
        "hidden_sizes": [100] * 6,
        "batch_size": 100,
        "epochs": 301,
        "learning_rate": 0.01,
        "dropout_rate": 0.2,
    },
    "smoke": {
        "train_size": 300,
        "hidden_sizes": [100] * 6,
        "batch_size": 100,
        "epochs": 151,
        "learning_rate": 0.01,
        "dropout_rate": 0.2,
    },
}


def run(ctx):
    settings = ctx.settings
    dataset = ctx.load_dataset(train_size=settings["train_size"])
    rate = settings["dropout_rate"]
    variants = [
        Variant(
            name,
            multilayer_net(dataset.num_features, settings["hidden_sizes"], dropout_rate=dropout, seed=ctx.seed),
            optimizers.SGD(settings["learning_rate"]),
        )
        for name, dropout in (("baseline", 0.0), (f"dropout={rate:g}", rate))
    ]
    return overfitting_comparison(ctx, dataset, variants, title=f"Dropout (ratio {rate:g})")


LAB = Lab("overfit_dropout", "a 7-layer net on 300 images, with vs without Dropout 0.2", PRESETS, run)

if __name__ == "__main__":
    sys.exit(main(LAB))
