"""The Colab notebooks: made from the lab scripts by jupytext, in sync, and run in a real Jupyter kernel.

Also: importing the kit changes nothing global (a notebook imports it).
"""

import importlib.util
import json
import os
import subprocess
import sys

import jupytext
import nbformat
import pytest
from conftest import BACKEND, MNIST_DIR, ROOT

from labs import NAMES, notebooks

spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "ci" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebooks)


def test_notebooks_on_disk_match_the_lab_scripts():
    assert notebooks.main(["--check"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_a_lab_notebook_is_its_script_plus_the_set_up_cell(name):
    nb = nbformat.read(notebooks.NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    script = jupytext.reads((ROOT / "labs" / f"{name}.py").read_text(), fmt="py:percent")
    ours = [(c.cell_type, c.source) for c in nb.cells if "setup" not in c.metadata.get("tags", [])]
    assert ours[0] == ("markdown", script.cells[0].source) and ours[2:] == [
        (c.cell_type, c.source) for c in script.cells[1:]
    ]
    assert sum(c.cell_type == "markdown" for c in script.cells) >= 5  # a lesson: text between short code cells
    assert max(len(c.source.splitlines()) for c in script.cells if c.cell_type == "code") <= 40
    setup = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
    assert len(setup) == 1 and notebooks.kit_source() in setup[0].source


def test_the_kit_source_is_one_setting_overridable_at_run_time():
    setup = notebooks.SETUP.format(source="https://example.org/kit.git")
    assert 'os.environ.get("COURSEKIT_SOURCE", "https://example.org/kit.git")' in setup
    assert "-c" in setup and "runtime-constraints.txt" in setup and "(3, 10)" in setup


IMPORT_CHECK = """
import os, sys
sys.argv = ["host-program", "--implementation", "/nowhere", "--preset", "huge"]
import keras, keras_tuner  # what these change themselves (jax sets TF_CPP_MIN_LOG_LEVEL) is not the kit's doing
environ, hook, fd2 = dict(os.environ), sys.excepthook, os.fstat(2)
import coursekit, coursekit.lab, labs, tuning
assert dict(os.environ) == environ, set(os.environ.items()) ^ set(environ.items())
assert sys.excepthook is hook and os.fstat(2) == fd2
if keras.backend.backend() == "tensorflow":
    from tensorflow.python.eager import context  # private: no public way to ask whether a device was started
    assert context.context()._context_handle is None, "importing the kit ran a device op"
print("clean")
"""


def test_importing_the_kit_changes_nothing_global():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "COURSEKIT_IMPLEMENTATION")}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "clean", result.stderr[-3000:]


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="run in the TensorFlow leg (Colab's default backend) and the Colab leg"
)
@pytest.mark.parametrize("name", ["quickstart", *NAMES])
def test_notebook_runs_in_a_kernel_and_shows_its_figures(name, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_PRESET", "smoke")
    dataset = f"idx:{MNIST_DIR}" if (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists() else "digits"
    monkeypatch.setenv("COURSEKIT_DATASET", dataset)
    seconds, problem, executed = run_notebooks.run(notebooks.NOTEBOOKS / f"{name}.ipynb", tmp_path)
    assert problem is None, problem
    assert run_notebooks.images_shown(executed) >= 1
    if name != "quickstart":
        config = json.loads(next(tmp_path.rglob(f"{name}/config.json")).read_text())
        assert config["preset"] == "smoke" and config["command"] == "notebook"
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
