#!/usr/bin/env bash
# The kit's GPU check, as one prepared call: on this machine's device (a GPU when the backend sees
# one), with JAX and with PyTorch, in the order of the targets: the chapter's 100-trial search with
# K = 20 and K = 100, a 10,000-trial search with K = 1,000, the labs twice in one warm process, then
# every lab as a command; each item's seconds, the device, and the speed-up over the project's
# 2-core CPU machine (benchmarks/cpu_reference.json, recorded there with `bash benchmarks/gpu.sh
# --record`), a line as soon as it ends. No item starts after BUDGET seconds (default 240: the rest
# is listed as skipped). Then the engine's population, fit and Keras-internals tests on the device,
# each backend's cut off after TEST_SECONDS (default 90). One call stays under 10 minutes (the
# budget, the item still running at its end, the tests): a lent machine's 15 also hold its start
# and a shorter rerun. README, GPU: how to carry the wheels and the MNIST files to such a machine.
#
#   bash benchmarks/gpu.sh                                  # everything the budget allows
#   BACKENDS=jax PARTS=search,big bash benchmarks/gpu.sh    # a part of it
#   PYTHON=/path/to/python DATASET=idx:/path/to/mnist BUDGET=600 bash benchmarks/gpu.sh
#
# It needs the kit's packages with a JAX and a PyTorch that see the GPU (jax[cuda12], a CUDA
# torch); on a machine without Keras, carry the wheels (README, GPU). It checks each backend's
# device first: a backend that cannot start is said and skipped (exit status 1), the others run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
DATASET="${DATASET:-idx:$(cd .. && pwd)/shared/datasets/mnist}"
BACKENDS="${BACKENDS:-jax,torch}"
PARTS="${PARTS:-search,big,warm,labs}"
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
budget=()
[ "${1:-}" = "--record" ] || budget=(--budget "${BUDGET:-240}")
status=0
"$PYTHON" benchmarks/device_timing.py --backends "$BACKENDS" --parts "$PARTS" --dataset "$DATASET" "${budget[@]}" "$@" \
    || status=$?
if [ "${TESTS:-1}" = 1 ] && [ "${1:-}" != "--record" ]; then
    for backend in ${BACKENDS//,/ }; do
        echo "== engine tests on the device, KERAS_BACKEND=$backend (at most ${TEST_SECONDS:-90} s)"
        KERAS_BACKEND=$backend timeout "${TEST_SECONDS:-90}" "$PYTHON" -m pytest -q -p no:cacheprovider \
            tests/test_population.py tests/test_fitting.py tests/test_keras_internals.py || echo "(rc $?: 124 is the time limit)"
    done
fi
exit $status
