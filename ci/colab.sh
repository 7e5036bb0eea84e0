#!/usr/bin/env bash
# CI's Colab leg. A Python 3.13 environment with Colab's packages (ci/colab-versions.txt); the kit
# installed by the notebooks' own set-up cell, from this checkout's committed HEAD
# (COURSEKIT_SOURCE); a check that every package that was there is left as it was; and every
# notebook, plus the student edition's assignment.ipynb, run in a real kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

source ci/find_python.sh
PY313=$(find_python 3.13)
if [ -z "$PY313" ]; then
    echo "== Colab leg SKIPPED: no Python 3.13 on this machine (tried \`pyenv prefix 3.13\` and python3.13)"
    exit 0
fi

ENV=$ROOT/.venv-colab
echo "== Colab leg: $("$PY313" --version), packages of ci/colab-versions.txt"
[ -x "$ENV/bin/python" ] || "$PY313" -m venv "$ENV"
"$ENV/bin/python" -m pip install -q -r ci/colab-versions.txt
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fresh_runtime() {  # what a new Colab runtime has: Colab's packages, no kit, no keras-tuner
    "$ENV/bin/python" -m pip uninstall -q -y coursekit keras-tuner kt-legacy >/dev/null 2>&1 || true
    "$ENV/bin/python" -m pip freeze | sort > "$1"
}

left_as_they_were() {  # every package of the fresh runtime keeps its version; print what was added
    "$ENV/bin/python" -m pip freeze | sort > "$WORK/after.txt"
    "$ENV/bin/python" - "$1" "$WORK/after.txt" <<'EOF'
import sys
def versions(path):
    return dict(line.split("==", 1) for line in open(path).read().split() if "==" in line)
before, after = versions(sys.argv[1]), versions(sys.argv[2])
changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
for name in ("tensorflow", "keras", "jax", "numpy"):
    print(f"   {name:10s} {before.get(name)} -> {after.get(name)}")
print(f"   added: {', '.join(sorted(set(after) - set(before))) or 'nothing'}")
if changed:
    sys.exit(f"the kit's installation changed the runtime's packages: {changed}")
EOF
}

echo "== Colab leg: the lab notebooks (the first one's set-up cell installs the kit)"
fresh_runtime "$WORK/before.txt"
export PYDEVD_DISABLE_FILE_VALIDATION=1 COURSEKIT_SOURCE="file://$ROOT" COURSEKIT_DATASET=${COURSEKIT_DATASET:-digits} COURSEKIT_PRESET=smoke
notebooks=(notebooks/quickstart.ipynb)
for path in notebooks/*.ipynb; do [ "$path" = notebooks/quickstart.ipynb ] || notebooks+=("$path"); done
"$ENV/bin/python" ci/run_notebooks.py --workdir "$WORK/labs" "${notebooks[@]}"
left_as_they_were "$WORK/before.txt"

echo "== Colab leg: the student edition's assignment.ipynb (installs the student edition)"
fresh_runtime "$WORK/before.txt"
"$ROOT/.venv/bin/python" -m coursekit.assignments make "$WORK/edition" --source "file://$WORK/edition" >/dev/null
git -C "$WORK/edition" init -q && git -C "$WORK/edition" add -A \
    && git -C "$WORK/edition" -c user.name=ci -c user.email=ci@localhost commit -q -m "student edition"
COURSEKIT_SOURCE="file://$WORK/edition" "$ENV/bin/python" ci/run_notebooks.py --workdir "$WORK/assignment" \
    "$WORK/edition/assignment.ipynb"
left_as_they_were "$WORK/before.txt"
echo "colab: $(( ${#notebooks[@]} + 1 )) passed, 0 failed"
