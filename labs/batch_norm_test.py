"""Batch Normalization across initial-weight scales: faster learning, less dependence on the init.

For 16 weight scales from 1 down to 1e-4, a 784-[100]x5-10 ReLU network is trained
with and without BatchNorm (SGD, learning rate 0.01, batches of 100, 20 epochs on
the first 1,000 training images). Train accuracy per epoch, one panel per scale:
with BatchNorm the network learns at almost every scale; without it, only a narrow
band of scales works.
"""

import sys

import numpy as np

from coursekit import optimizers
from coursekit.experiment import Lab, LabResult, main
from coursekit.initializers import Normal
from coursekit.models import multilayer_net
from coursekit.plots import Line, plot_panels
from coursekit.training import Variant, history_rows

PRESETS = {
    "full": {
        "train_size": 1000,
        "hidden_sizes": [100] * 5,
        "batch_size": 100,
        "epochs": 20,
        "learning_rate": 0.01,
        "scales": 16,
    },
    "smoke": {
        "train_size": 1000,
        "hidden_sizes": [100] * 5,
        "batch_size": 100,
        "epochs": 10,
        "learning_rate": 0.01,
        "scales": 8,
    },
}


def run(ctx):
    settings = ctx.settings
    dataset = ctx.load_dataset(train_size=settings["train_size"])
    scales = np.logspace(0, -4, num=settings["scales"])

    # ## Two networks per weight scale, with and without BatchNorm.
    variants = [
        Variant(
            f"{label}@{scale:.6g}",
            multilayer_net(
                dataset.num_features,
                settings["hidden_sizes"],
                weight_init=Normal(float(scale), seed=ctx.seed),
                batch_norm=label == "bn",
                seed=ctx.seed,
            ),
            optimizers.SGD(settings["learning_rate"]),
            factors={"weight_scale": float(scale)},
            label=label,
        )
        for scale in scales
        for label in ("bn", "plain")
    ]

    # ## All 2 x 16 networks train side by side on the same minibatches.
    histories = ctx.train(
        variants, dataset, epochs=settings["epochs"], eval_sets={"train_accuracy": (dataset.x_train, dataset.y_train)}
    )

    # ## Figure: a 4x4 grid, BatchNorm solid, without it dashed.
    panels, bn_wins = [], 0
    for index, scale in enumerate(scales):
        bn, plain = histories[variants[2 * index].name], histories[variants[2 * index + 1].name]
        bn_wins += bn.final("train_accuracy") > plain.final("train_accuracy")
        lines = []
        for history, label, style in ((bn, "Batch Normalization", "-"), (plain, "Normal (without BatchNorm)", "--")):
            steps, values = zip(*history.metrics["train_accuracy"])
            lines.append(Line(steps, values, label=label, style=style, markevery=2))
        panels.append({"title": f"W: {scale:.3g}", "lines": lines, "ylim": (0, 1.0)})
    figure = plot_panels(panels, ctx.figure_path("batch_norm.png"), ncols=4, show=ctx.show, panel_size=(3.2, 2.6))

    summary = {
        "scales where BN ends higher": f"{bn_wins} of {len(scales)}",
        "final train accuracy (bn/plain) per scale": [
            f"{scale:.3g}: {histories[variants[2 * i].name].final('train_accuracy'):.3f}/"
            f"{histories[variants[2 * i + 1].name].final('train_accuracy'):.3f}"
            for i, scale in enumerate(scales)
        ],
        "diverged": [name for name, h in histories.items() if h.diverged_at is not None],
    }
    return LabResult(history_rows(histories, record_loss=False), [figure], summary, extra_columns=("weight_scale",))


LAB = Lab("batch_norm_test", "with vs without BatchNorm at 16 initial-weight scales (4x4 grid)", PRESETS, run)

if __name__ == "__main__":
    sys.exit(main(LAB))
