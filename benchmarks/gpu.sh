#!/usr/bin/env bash
# The kit's GPU check, as one prepared call: on this machine's device (a GPU when the backend sees
# one), with JAX and with PyTorch, every lab as a command and all of them in one warm process, the
# chapter's 100-trial search with K = 20 and K = 100, and a 10,000-trial search with K = 1,000:
# each item's seconds, the device, and the speed-up over the project's 2-core CPU machine
# (benchmarks/cpu_reference.json, recorded there with `bash benchmarks/gpu.sh --record`). Then the
# engine's tests on the device. About 6 minutes on an H100 class GPU (it runs on a CPU too, slowly).
#
#   bash benchmarks/gpu.sh                                  # everything
#   BACKENDS=jax PARTS=search,big bash benchmarks/gpu.sh    # a part of it
#   PYTHON=/path/to/python DATASET=idx:/path/to/mnist bash benchmarks/gpu.sh
#
# It needs the kit's packages with a JAX and a PyTorch that see the GPU (jax[cuda12], a CUDA
# torch); on a machine without Keras, carry the wheels (README, GPU). It checks each backend's
# device first and stops with the backend's error if one cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
DATASET="${DATASET:-idx:$(cd .. && pwd)/shared/datasets/mnist}"
BACKENDS="${BACKENDS:-jax,torch}"
PARTS="${PARTS:-labs,warm,search,big}"
export TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" benchmarks/device_timing.py --backends "$BACKENDS" --parts "$PARTS" --dataset "$DATASET" "$@"
if [ "${TESTS:-1}" = 1 ] && [ "${1:-}" != "--record" ]; then
    for backend in ${BACKENDS//,/ }; do
        echo "== engine tests on the device, KERAS_BACKEND=$backend"
        KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -p no:cacheprovider \
            tests/test_population.py tests/test_fitting.py tests/test_tuner.py tests/test_keras_internals.py || true
    done
fi
