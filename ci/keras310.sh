#!/usr/bin/env bash
# CI's Keras 3.10 leg: the oldest Keras of the supported range (pyproject.toml), on JAX and Python
# 3.12 as Colab's older runtime had it (ci/keras310-versions.txt): the components, the Keras
# contract, saving, the engine, fit for populations and the drop-in tuners.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/find_python.sh
PY312=$(find_python 3.12)
if [ -z "$PY312" ]; then
    echo "== Keras 3.10 leg SKIPPED: no Python 3.12 on this machine (tried \`pyenv prefix 3.12\` and python3.12)"
    exit 0
fi
ENV=.venv-keras310
stamp=$ENV/.requirements.sha256
wanted=$(sha256sum ci/keras310-versions.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    rm -rf "$ENV"
    "$PY312" -m venv "$ENV"
    "$ENV/bin/python" -m pip install -q -r ci/keras310-versions.txt
    echo "$wanted" > "$stamp"
fi
echo "== pytest, Keras $("$ENV/bin/python" -c 'import importlib.metadata as m; print(m.version("keras"))'), KERAS_BACKEND=jax, $("$ENV/bin/python" --version)"
KERAS_BACKEND=jax "$ENV/bin/python" -m pytest -p no:cacheprovider \
    tests/test_optimizers.py tests/test_initializers.py tests/test_layers.py tests/test_regularizers.py \
    tests/test_keras_contract.py tests/test_saving.py tests/test_models.py tests/test_reference.py \
    tests/test_training.py tests/test_population.py tests/test_fitting.py tests/test_tuner.py \
    tests/test_keras_internals.py "$@"
