"""The Colab notebooks, made from the lab scripts by jupytext: `python -m labs.notebooks [--check]`.

Each `labs/NAME.py` is a jupytext percent script; its notebook `notebooks/NAME.ipynb` is the
same cells, plus one set-up cell after the title that installs the kit where it is missing
(Colab). `notebooks/quickstart.ipynb` is the entry point. `--check` exits 1 when a notebook on
disk differs from what the scripts give (CI runs it).

Where the kit is installed from is one setting: `[tool.coursekit] source` in pyproject.toml
(a git URL; change it once to where your course hosts the kit and regenerate the
notebooks). In a running notebook the environment variable COURSEKIT_SOURCE overrides it.
"""

import argparse
import json
import pathlib
import re
import sys

import jupytext
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labs import NAMES

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

SETUP = """#@title Set-up: the course kit (installs it in Colab) {{ display-mode: "form" }}
# Installs the kit beside this runtime's packages: pip may only add what is missing (keras-tuner),
# every package already here (TensorFlow, Keras, JAX, NumPy, ...) is pinned to its version.
# Where the kit is already importable, this does nothing.
import importlib.metadata, importlib.util, os, subprocess, sys

KIT_SOURCE = os.environ.get("COURSEKIT_SOURCE", "{source}")
keras_version = importlib.util.find_spec("keras") and importlib.metadata.version("keras")
if keras_version and tuple(int(part) for part in keras_version.split(".")[:2]) < (3, 10):
    raise RuntimeError(
        f"coursekit needs Keras >= 3.10, and this runtime has Keras {{keras_version}}. "
        "In Colab: Runtime > Change runtime type > Runtime version: Latest."
    )
if importlib.util.find_spec("coursekit") is None:
    folder = os.path.abspath("coursekit-kit")
    if not os.path.isdir(folder):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", KIT_SOURCE, folder], check=True)
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=True)
    with open("runtime-constraints.txt", "w") as handle:
        handle.writelines(f"{{line}}\\n" for line in frozen.stdout.splitlines() if "==" in line and " @ " not in line)
    command = [sys.executable, "-m", "pip", "install", "-q", "-c", "runtime-constraints.txt", "-e", folder]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"could not install coursekit beside this runtime's packages:\\n{{done.stderr[-3000:]}}")
    os.chdir(folder)
    sys.path.insert(0, folder)
    print(f"installed coursekit from {{KIT_SOURCE}} in {{folder}}")
from coursekit.quiet import start_backend

start_backend()  # load Keras now, with TensorFlow's C++ start-up log kept off this page"""

DEVICE = """# Which backend and device train: a GPU is used automatically when there is one
# (in Colab: Runtime > Change runtime type > GPU).
from coursekit import runtime

runtime.device_report()"""


def kit_source(root=ROOT):
    """The git URL the notebooks install the kit from: `[tool.coursekit] source` in pyproject.toml."""
    text = (root / "pyproject.toml").read_text()  # (tomllib would need Python 3.11)
    match = re.search(r'^\[tool\.coursekit\][^\[]*?^source\s*=\s*"([^"]+)"', text, flags=re.MULTILINE | re.DOTALL)
    if not match:
        raise ValueError(f'no [tool.coursekit] source = "..." in {root / "pyproject.toml"}')
    return match.group(1)


def setup_cell(source):
    return new_code_cell(SETUP.format(source=source), metadata={"tags": ["setup"]})


def lab_notebook(name, source):
    """The notebook of `labs/<name>.py`: its cells, with the set-up cell after the title."""
    notebook = jupytext.reads((ROOT / "labs" / f"{name}.py").read_text(), fmt="py:percent")
    cells = [
        new_markdown_cell(c.source) if c.cell_type == "markdown" else new_code_cell(c.source) for c in notebook.cells
    ]
    note = new_markdown_cell(
        f"*This notebook is `labs/{name}.py` (jupytext); the same file runs as `python -m labs.{name}`. "
        "In a notebook the preset comes from `COURSEKIT_PRESET` (`full`, the default, or `smoke`), and the "
        f"number of seeds it runs from `COURSEKIT_SEEDS` (default here: {notebook_seeds(name)}).*"
    )
    return _notebook([cells[0], note, setup_cell(source), *cells[1:]])


def notebook_seeds(name):
    """How many seeds lab `name` runs in a notebook by default: its `start(..., notebook_seeds=N)` (read, not run)."""
    match = re.search(r"start\([^)]*notebook_seeds=(\d+)", (ROOT / "labs" / f"{name}.py").read_text())
    return int(match.group(1)) if match else 1


def quickstart_notebook(source):
    lines = "\n".join(f"- [{title}]({name}.ipynb) (`{name}`)" for name, title in _titles())
    return _notebook(
        [
            new_markdown_cell(
                '# coursekit quickstart\n\nThe chapter "Techniques related to learning" as Keras components and '
                "labs. Run the cells top to bottom: install, check the device, use the components, run a lab."
            ),
            setup_cell(source),
            new_code_cell(DEVICE),
            new_markdown_cell("## The course's components are ordinary Keras objects"),
            new_code_cell(
                "from coursekit.models import classification_loss, multilayer_net\n"
                "from coursekit.optimizers import Adam\n\n"
                "model = multilayer_net(784, [100] * 4, batch_norm=True, dropout_rate=0.2, weight_decay=1e-4)\n"
                'model.compile(Adam(), classification_loss(), metrics=["accuracy"])\n'
                "model.summary()"
            ),
            new_markdown_cell(
                "## Run a lab\n\n`coursekit.lab.run` runs a lab script and writes its results; "
                "`coursekit.results.load` reads them back as a pandas DataFrame."
            ),
            new_code_cell(
                "from coursekit import lab, results\n\n"
                'run = lab.run("optimizer_compare_naive", show=True)\n'
                'results.load(run.out_dir).pivot_table(index="step", columns=["variant", "metric"], values="value").tail()'
            ),
            new_markdown_cell(f"## Every lab is a notebook\n\n{lines}"),
        ]
    )


def _titles():
    from labs import title

    return [(name, title(name)) for name in NAMES]


def _notebook(cells):
    nb = new_notebook(cells=cells)
    nb.metadata.update(
        {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "accelerator": "GPU",
            "colab": {"provenance": []},
        }
    )
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"  # stable ids: regeneration is byte-for-byte repeatable
    return nb


def expected_notebooks(source=None):
    """{path: notebook} for every notebook the scripts define."""
    source = source or kit_source()
    notebooks = {NOTEBOOKS / f"{name}.ipynb": lab_notebook(name, source) for name in NAMES}
    notebooks[NOTEBOOKS / "quickstart.ipynb"] = quickstart_notebook(source)
    return notebooks


def render(nb):
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_notebooks(folder, source=None):
    """Write every notebook into `folder` (the student edition uses this with its own source)."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path, nb in expected_notebooks(source).items():
        nbformat.validate(nb)
        (folder / path.name).write_text(render(nb))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labs.notebooks")
    parser.add_argument("--check", action="store_true", help="only check that notebooks/ is up to date")
    args = parser.parse_args(argv)
    if not args.check:
        write_notebooks(NOTEBOOKS)
        print(f"wrote {NOTEBOOKS}")
        return 0
    stale = [
        path.name for path, nb in expected_notebooks().items() if not path.exists() or path.read_text() != render(nb)
    ]
    if stale:
        print(f"stale notebooks (run `python -m labs.notebooks`): {', '.join(stale)}", file=sys.stderr)
        return 1
    print("notebooks are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
