"""The chapter's experiments, one lesson-script each: `python -m labs` lists them.

Each `labs/NAME.py` is a script in jupytext's percent format: run it with
`python -m labs.NAME [options]` (or `coursekit.lab.run(NAME)`), read it as the notebook
`notebooks/NAME.ipynb`. Importing this package changes nothing; only when Python is starting
a `python -m labs...` command does it first start Keras with TensorFlow's C++ start-up lines
kept off the terminal, so that a command's one-line error stays one line.
"""

import pathlib
import re
import sys

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
    "tune_your_model",
)
FOLDER = pathlib.Path(__file__).resolve().parent


def title(name):
    """The lab's title: the first markdown heading of its script (read, not run)."""
    match = re.search(r"^# # (.+)$", (FOLDER / f"{name}.py").read_text(), flags=re.MULTILINE)
    return match.group(1).strip() if match else name


if sys.argv[:1] == ["-m"]:  # Python sets argv[0] to "-m" only while it starts `python -m labs...`
    import coursekit  # noqa: F401  (starts Keras quietly: see coursekit/__init__.py)
