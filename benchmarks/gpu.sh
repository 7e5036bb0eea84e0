#!/usr/bin/env bash
# The lab suite and the chapter's 100-trial search on this machine's device (a GPU when JAX
# sees one), with KERAS_BACKEND=jax: per-command seconds, the device, and the speed-up over
# the project's 2-core CPU machine (benchmarks/cpu_reference.json, recorded there with
# `bash benchmarks/gpu.sh --record`). Runs on a CPU too. Takes about 6 minutes on the CPU.
#
#   bash benchmarks/gpu.sh                       # one call on the GPU machine
#   PYTHON=/path/to/python DATASET=idx:/path/to/mnist bash benchmarks/gpu.sh
#
# It needs the project's packages with a JAX that sees the GPU (jax[cuda12]); it checks the
# device first and stops with the backend's error if JAX cannot start.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
DATASET="${DATASET:-idx:$(cd .. && pwd)/shared/datasets/mnist}"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}" TF_CPP_MIN_LOG_LEVEL=2
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PYTHON" benchmarks/device_timing.py --dataset "$DATASET" "$@"
