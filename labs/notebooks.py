"""Generate the Colab notebooks from the lab scripts: `python -m labs.notebooks [--check]`.

The `.py` lab stays the source. jupytext turns it into cells; the module docstring
becomes the title cell, the `__main__` guard is replaced by cells that run the lab
with `run_lab` and show its figures inline, and set-up cells (get the kit in
Colab, report the GPU) go first. `notebooks/quickstart.ipynb` is the entry point.
`--check` exits 1 if a notebook on disk differs from what the scripts give.
"""

import argparse
import json
import pathlib
import sys

import jupytext
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labs import NAMES

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

SETUP = """# Set-up. In Colab (Runtime > Change runtime type > GPU for speed) this fetches the kit;
# inside a checkout of the kit (after `bash scripts/setup.sh`) it does nothing.
import os
import subprocess
import sys

REPO_URL = "https://github.com/YOUR-COURSE/coursekit.git"  # where your course hosts the kit
if "google.colab" in sys.modules and not os.path.exists("coursekit/__init__.py"):
    if not os.path.exists("coursekit-src"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "coursekit-src"], check=True)
    os.chdir("coursekit-src")
    # Colab already has TensorFlow and Keras: add keras-tuner and the kit only.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "keras-tuner==1.4.8", "-e", ".", "--no-deps"], check=True)
sys.path.insert(0, os.getcwd())"""

DEVICE = """# Which backend and device will train: a GPU is used automatically when present.
from coursekit import runtime

runtime.device_report()"""


def _run_cells(name, preset="full"):
    return [
        new_markdown_cell(
            '## Run it\n\n`preset="smoke"` finishes in seconds; `dataset` can be `mnist`, `digits`, `idx:PATH`.'
        ),
        new_code_cell(
            "from coursekit.experiment import run_lab\n\n"
            f'out_dir, result = run_lab(LAB, preset="{preset}", dataset="auto", out="results")\n'
            "result.summary"
        ),
        new_code_cell(
            "from IPython.display import Image, display\n\n"
            "for figure in result.figures:\n"
            "    display(Image(filename=str(figure)))"
        ),
    ]


def lab_notebook(name):
    """The notebook of `labs/<name>.py`."""
    source = (ROOT / "labs" / f"{name}.py").read_text()
    cells = jupytext.reads(source, fmt="py:light").cells
    docstring = cells.pop(0).source.strip().strip('"').strip()
    title, _, body = docstring.partition("\n")
    cells = [c for c in cells if not c.source.startswith('if __name__ == "__main__"')]
    header = new_markdown_cell(
        f"# {title}\n\n{body.strip()}\n\n*Generated from `labs/{name}.py` by `python -m labs.notebooks`: "
        "edit the script, then regenerate.*"
    )
    code = [new_code_cell(c.source) if c.cell_type == "code" else new_markdown_cell(c.source) for c in cells]
    return _notebook([header, new_code_cell(SETUP), new_code_cell(DEVICE), *code, *_run_cells(name)])


def quickstart_notebook():
    lines = "\n".join(f"- `{n}`: `notebooks/{n}.ipynb`" for n in NAMES)
    return _notebook(
        [
            new_markdown_cell(
                '# coursekit quickstart\n\nThe chapter "Techniques related to learning" as Keras components and labs. '
                "Run the cells top to bottom: install, check the GPU, run a lab, see its figures."
            ),
            new_code_cell(SETUP),
            new_code_cell(DEVICE),
            new_markdown_cell("## The course's components are ordinary Keras objects"),
            new_code_cell(
                "from coursekit.layers import BatchNorm, Dropout\n"
                "from coursekit.models import classification_loss, multilayer_net\n"
                "from coursekit.optimizers import Adam\n\n"
                "model = multilayer_net(784, [100] * 4, batch_norm=True, dropout_rate=0.2, weight_decay=1e-4)\n"
                'model.compile(Adam(), classification_loss(), metrics=["accuracy"])\n'
                "model.summary()"
            ),
            new_markdown_cell("## Run a lab: the optimizers' paths on f(x, y) = x²/20 + y²"),
            new_code_cell(
                "from coursekit.experiment import run_lab\n"
                "from IPython.display import Image, display\n"
                "from labs.optimizer_compare_naive import LAB\n\n"
                'out_dir, result = run_lab(LAB, preset="full", out="results")\n'
                "for figure in result.figures:\n"
                "    display(Image(filename=str(figure)))\n"
                "result.summary"
            ),
            new_markdown_cell(f"## Every lab has its own notebook\n\n{lines}"),
        ]
    )


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


def expected_notebooks():
    """{path: notebook} for every notebook the scripts define."""
    notebooks = {NOTEBOOKS / f"{name}.ipynb": lab_notebook(name) for name in NAMES}
    notebooks[NOTEBOOKS / "quickstart.ipynb"] = quickstart_notebook()
    return notebooks


def render(nb):
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labs.notebooks")
    parser.add_argument("--check", action="store_true", help="only check that notebooks/ is up to date")
    args = parser.parse_args(argv)
    stale = []
    for path, nb in expected_notebooks().items():
        nbformat.validate(nb)
        text = render(nb)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale notebooks (run `python -m labs.notebooks`): {', '.join(stale)}", file=sys.stderr)
        return 1
    print("notebooks are up to date" if args.check else f"wrote {NOTEBOOKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
