"""Gradient check through a BatchNorm network: autodiff against central differences.

The backend's automatic differentiation of a 784-[100, 100]-10 network with
BatchNorm (float64, a batch of 10 MNIST images, training mode) is compared with
central finite differences, parameter by parameter. The relative errors are at
round-off level: BatchNorm's backward pass is right. (With a batch of one image
BatchNorm's output is constant, so the batch is larger than 1.)
"""

import sys

import numpy as np

from coursekit import runtime
from coursekit.experiment import Lab, LabResult, main
from coursekit.gradcheck import autodiff_gradients, numerical_gradients, relative_error, sample_indices
from coursekit.models import classification_loss, multilayer_net
from coursekit.plots import Line, plot_panels

PRESETS = {
    "full": {"batch": 10, "hidden_sizes": [100, 100], "entries_per_parameter": 40},
    "smoke": {"batch": 4, "hidden_sizes": [10, 10], "entries_per_parameter": 40},
}


def run(ctx):
    settings = ctx.settings
    dataset = ctx.load_dataset(train_size=settings["batch"])
    with runtime.float64():
        x, y = dataset.x_train.astype("float64"), dataset.y_train
        model = multilayer_net(dataset.num_features, settings["hidden_sizes"], batch_norm=True, seed=ctx.seed)
        loss = classification_loss()

        def batch_loss():
            return loss(y, model(x, training=True))

        # ## Autodiff vs central differences on a sample of each parameter's entries.
        variables = model.trainable_variables
        rng = np.random.default_rng(ctx.seed)
        chosen = [sample_indices(v.shape, settings["entries_per_parameter"], rng) for v in variables]
        automatic = autodiff_gradients(batch_loss, variables)
        numeric = numerical_gradients(batch_loss, variables, indices=chosen)
        # Relative error with a floor of 1e-6: the bias right before BatchNorm has a true
        # gradient of 0, where both methods return round-off (about 1e-11).
        errors = {
            v.path: relative_error([a[i] for i in idx], [n[i] for i in idx], floor=1e-6)
            for v, a, n, idx in zip(variables, automatic, numeric, chosen)
        }

    rows = [{"variant": name, "step": 1, "metric": "max_relative_error", "value": err} for name, err in errors.items()]
    panel = {
        "title": "autodiff vs central differences",
        "lines": [Line(range(len(errors)), list(errors.values()), style="", marker="o")],
        "ylabel": "max relative error",
        "xlabel": "parameter (" + ", ".join(errors) + ")",
        "yscale": "log",
    }
    figure = plot_panels([panel], ctx.figure_path("gradient_check.png"), show=ctx.show, panel_size=(7, 4))
    summary = {"max relative error": f"{max(errors.values()):.2e}", **{k: f"{v:.2e}" for k, v in errors.items()}}
    return LabResult(rows, [figure], summary)


LAB = Lab(
    "batch_norm_gradient_check", "autodiff vs central differences through a BatchNorm network (float64)", PRESETS, run
)

if __name__ == "__main__":
    sys.exit(main(LAB))
