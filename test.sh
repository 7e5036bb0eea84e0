#!/usr/bin/env bash
# Set up .venv if needed, then: lint, notebooks in sync, the test suite on TensorFlow, JAX and
# PyTorch (its CPU build), and (with no arguments) the Colab leg (Colab's packages on Python 3.13,
# every notebook in a kernel) and the Keras 3.10 leg (the oldest supported Keras, JAX, Python 3.12).
# Extra arguments go to pytest (e.g. `bash test.sh -m slow` for the long runs) and skip the last two.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
echo "== ruff"
.venv/bin/ruff check coursekit labs tuning tests benchmarks ci
.venv/bin/ruff format --check coursekit labs tuning tests benchmarks ci
.venv/bin/python -m labs.notebooks --check
echo "== pytest, KERAS_BACKEND=tensorflow"
KERAS_BACKEND=tensorflow .venv/bin/python -m pytest "$@"
echo "== pytest, KERAS_BACKEND=jax"
KERAS_BACKEND=jax .venv/bin/python -m pytest "$@"
echo "== pytest, KERAS_BACKEND=torch"
KERAS_BACKEND=torch .venv/bin/python -m pytest "$@"
if [ $# -eq 0 ]; then
    bash ci/colab.sh
    bash ci/keras310.sh
fi
