"""Activations through five layers: how the initial weights shape them.

A batch of 1,000 random inputs (100 features) passes through five layers of 100
units without bias. For sigmoid, ReLU and tanh, the histograms of each layer's
activations under std 1, std 0.01, Xavier and He weights show the chapter's
point: std 1 saturates sigmoid at 0 and 1 (vanishing gradients), std 0.01
squeezes everything to one value (lost expressiveness), Xavier keeps sigmoid and
tanh spread, and He keeps ReLU alive in every layer.
"""

import sys

import keras
import numpy as np

from coursekit.experiment import Lab, LabResult, main
from coursekit.initializers import He, Normal, Xavier
from coursekit.plots import plot_panels

INITIALIZERS = {
    "std=1": lambda seed: Normal(1.0, seed=seed),
    "std=0.01": lambda seed: Normal(0.01, seed=seed),
    "Xavier": Xavier,
    "He": He,
}
ACTIVATIONS = {"sigmoid": (0, 1), "relu": (0, 1), "tanh": (-1, 1)}  # histogram ranges
PRESETS = {
    "full": {"samples": 1000, "units": 100, "layers": 5, "bins": 30},
    "smoke": {"samples": 200, "units": 100, "layers": 5, "bins": 30},
}


def layer_activations(x, activation, initializer, layers, units):
    """Activations after each of `layers` Dense(units, no bias) + activation layers."""
    outputs = []
    for _ in range(layers):
        x = keras.layers.Dense(units, use_bias=False, kernel_initializer=initializer, activation=activation)(x)
        outputs.append(keras.ops.convert_to_numpy(x))
    return outputs


def run(ctx):
    settings = ctx.settings
    x = np.random.default_rng(ctx.seed).standard_normal((settings["samples"], settings["units"])).astype("float32")
    rows, figures, summary = [], [], {}
    for activation, value_range in ACTIVATIONS.items():
        panels = []
        for init_name, make in INITIALIZERS.items():
            variant = f"{activation}/{init_name}"
            # A SeedGenerator gives each layer its own draw of weights.
            initializer = make(seed=keras.random.SeedGenerator(ctx.seed))
            outputs = layer_activations(x, activation, initializer, settings["layers"], settings["units"])
            for layer, a in enumerate(outputs, start=1):
                rows.append({"variant": variant, "step": layer, "metric": "activation_mean", "value": float(a.mean())})
                rows.append({"variant": variant, "step": layer, "metric": "activation_std", "value": float(a.std())})
                panels.append(
                    {
                        "title": f"{init_name}: layer {layer}",
                        "hist": (a.ravel(), settings["bins"], value_range),
                        "hide_ticks": layer > 1,
                    }
                )
            summary[f"{variant} layer-{settings['layers']} std"] = round(float(outputs[-1].std()), 4)
        figures.append(
            plot_panels(
                panels,
                ctx.figure_path(f"histogram_{activation}.png"),
                ncols=settings["layers"],
                suptitle=f"{activation} activations per layer",
                panel_size=(2.6, 2.0),
                show=ctx.show,
            )
        )
    return LabResult(rows, figures, summary)


LAB = Lab(
    "weight_init_activation_histogram",
    "per-layer activation histograms for sigmoid/ReLU/tanh under std 1, std 0.01, Xavier, He",
    PRESETS,
    run,
    uses_dataset=False,
)

if __name__ == "__main__":
    sys.exit(main(LAB))
