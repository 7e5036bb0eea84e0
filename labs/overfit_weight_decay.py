"""Overfitting and weight decay: a big network on 300 images, with and without decay.

A 784-[100]x6-10 network trained on only the first 300 training images (SGD,
learning rate 0.01, batches of 100, 201 epochs) fits them perfectly while test
accuracy lags far behind. Weight decay (lambda 0.1, loss + 0.5 * lambda * sum(W^2)
on every weight matrix) keeps the weights small and narrows the train/test gap.
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
        "epochs": 201,
        "learning_rate": 0.01,
        "weight_decay": 0.1,
    },
    "smoke": {
        "train_size": 300,
        "hidden_sizes": [100] * 6,
        "batch_size": 100,
        "epochs": 101,
        "learning_rate": 0.01,
        "weight_decay": 0.1,
    },
}


def run(ctx):
    settings = ctx.settings
    dataset = ctx.load_dataset(train_size=settings["train_size"])
    lam = settings["weight_decay"]
    variants = [
        Variant(
            name,
            multilayer_net(dataset.num_features, settings["hidden_sizes"], weight_decay=decay, seed=ctx.seed),
            optimizers.SGD(settings["learning_rate"]),
        )
        for name, decay in (("baseline", 0.0), (f"lambda={lam:g}", lam))
    ]
    return overfitting_comparison(ctx, dataset, variants, title=f"weight decay (lambda={lam:g})")


LAB = Lab("overfit_weight_decay", "a 7-layer net on 300 images, with vs without weight decay 0.1", PRESETS, run)

if __name__ == "__main__":
    sys.exit(main(LAB))
