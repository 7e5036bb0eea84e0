"""Optimizers on MNIST: SGD, Momentum, AdaGrad and Adam training the same network.

Four copies of a 784-[100]x4-10 ReLU network with He initial weights, one per
optimizer at its default learning rate, see the same minibatches of 128 for
2,000 iterations. The smoothed loss curves show SGD learning slowest.
"""

import sys

from coursekit import optimizers
from coursekit.experiment import Lab, LabResult, main
from coursekit.models import multilayer_net
from coursekit.plots import loss_panel, plot_panels
from coursekit.training import Variant, history_rows, late_mean_losses, train_variants

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

    # ## Train side by side on the same minibatches.
    histories = train_variants(
        variants,
        dataset.x_train,
        dataset.y_train,
        batch_size=settings["batch_size"],
        iterations=settings["iterations"],
        seed=ctx.seed,
        verbose=ctx.verbose,
    )

    figure = plot_panels(
        [loss_panel(histories, title="optimizer comparison")],
        ctx.figure_path("loss.png"),
        show=ctx.show,
        panel_size=(6, 4.5),
    )
    return LabResult(history_rows(histories), [figure], late_mean_losses(histories))


LAB = Lab(
    "optimizer_compare_mnist", "SGD vs Momentum vs AdaGrad vs Adam on a 784-[100]x4-10 net, same batches", PRESETS, run
)

if __name__ == "__main__":
    sys.exit(main(LAB))
