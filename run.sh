#!/usr/bin/env bash
# The main job: set up .venv if needed, then run every lab at the full preset into results/.
# Extra arguments go to `python -m labs`, e.g. `bash run.sh batch_norm_test --preset smoke`.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ -z "${COURSEKIT_MNIST:-}" ] && [ -d ../shared/datasets/mnist ]; then  # real MNIST beside the checkout
    export COURSEKIT_MNIST="$(cd ../shared/datasets/mnist && pwd)"     # `--dataset auto` reads it, offline
fi
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then set -- all "$@"; fi  # no lab named: all of them
exec .venv/bin/python -m labs "$@"
