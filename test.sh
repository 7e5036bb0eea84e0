#!/usr/bin/env bash
# Set up .venv if needed, then run the test suite on the TensorFlow backend and on JAX.
# Extra arguments go to pytest (e.g. `bash test.sh -m slow` for the long runs).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
echo "== ruff"
.venv/bin/ruff check coursekit labs tuning tests benchmarks
.venv/bin/python -m labs.notebooks --check
echo "== pytest, KERAS_BACKEND=tensorflow"
KERAS_BACKEND=tensorflow .venv/bin/python -m pytest "$@"
echo "== pytest, KERAS_BACKEND=jax"
KERAS_BACKEND=jax .venv/bin/python -m pytest "$@"
