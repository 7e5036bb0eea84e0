"""The Colab notebooks: made from the lab scripts by jupytext, in sync, and run in a real Jupyter kernel.

Also: importing the kit changes nothing global (a notebook imports it).
"""

import base64
import importlib.util
import json
import os
import subprocess
import sys

import jupytext
import nbformat
import pytest
from conftest import BACKEND, MNIST_DIR, ROOT, checkout_first_env

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


def test_the_set_up_cell_is_short_and_titled_for_colabs_form_view():
    setup = notebooks.SETUP.format(source="https://example.org/kit.git")
    first, *rest = setup.splitlines()
    assert first.startswith("#@title ") and first.endswith('{ display-mode: "form" }')
    assert len(setup.splitlines()) <= 32  # it was 44 lines
    compile(setup, "set-up cell", "exec")
    for name in ("quickstart", *NAMES):
        nb = nbformat.read(notebooks.NOTEBOOKS / f"{name}.ipynb", as_version=4)
        assert nb.cells[0].cell_type == "markdown" and [
            c.source for c in nb.cells if "setup" in c.metadata.get("tags", [])
        ][0].startswith("#@title")


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


WIDGET = "application/vnd.jupyter.widget-view+json"
INTERACTIVE = {  # the interactive figures of each lab notebook
    "optimizer_compare_naive": 1,
    "weight_init_activation_histogram": 1,
    "batch_norm_test": 1,
    "overfit_weight_decay": 1,
    "overfit_dropout": 1,
}


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="run in the TensorFlow leg (Colab's default backend) and the Colab leg"
)
@pytest.mark.parametrize("name", ["quickstart", *NAMES])
def test_notebook_runs_in_a_kernel_and_shows_its_figures(name, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", checkout_first_env()["PYTHONPATH"])  # the kernel imports this checkout's kit
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
        # Every interactive figure carries, beside its widget, the PNG the lab saved: what GitHub,
        # nbviewer and a notebook without a widget front end show.
        folder = next(tmp_path.rglob(f"{name}/config.json")).parent
        saved = {(folder / figure).read_bytes() for figure in config["figures"]}
        widgets = [o["data"] for c in executed.cells for o in c.get("outputs", []) if WIDGET in o.get("data", {})]
        assert all(base64.b64decode(data["image/png"]) in saved for data in widgets)
        assert len(widgets) == INTERACTIVE.get(name, 0)
