"""The chapter's experiments, one thin script each: `python -m labs` lists them."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the labs


def _implementation_from_argv(argv):
    """`--implementation DIR` must act before coursekit is imported: it picks the components."""
    for index, arg in enumerate(argv):
        if arg == "--implementation" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--implementation="):
            return arg.split("=", 1)[1]
    return None


if _implementation_from_argv(sys.argv):
    os.environ["COURSEKIT_IMPLEMENTATION"] = _implementation_from_argv(sys.argv)

import coursekit  # noqa: E402, F401  (starts Keras quietly, with the chosen components)

NAMES = (
    "optimizer_compare_naive",
    "optimizer_compare_mnist",
    "weight_init_activation_histogram",
    "weight_init_compare",
    "batch_norm_test",
    "batch_norm_gradient_check",
    "overfit_weight_decay",
    "overfit_dropout",
    "hyperparameter_optimization",
)
