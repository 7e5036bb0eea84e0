"""Execute notebooks in a real Jupyter kernel, as a student would, and check that they show their figures.

    python ci/run_notebooks.py [--workdir DIR] NOTEBOOK...

Each notebook runs top to bottom (nbclient, kernel `python3` of this interpreter) with a
scratch working folder as its current folder, with COURSEKIT_PRESET=smoke unless the environment sets
it. A lab notebook must show inline (image/png) every figure its config.json lists. Prints one
line per notebook and exits 1 if any failed. Needs only nbclient and nbformat (Colab has both).
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import nbclient
import nbformat


def images_shown(notebook):
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def figures_written(workdir, name):
    """The figures the lab `name` wrote (from its config.json), searched under `workdir`."""
    configs = sorted(pathlib.Path(workdir).rglob(f"{name}/config.json"))
    return json.loads(configs[-1].read_text())["figures"] if configs else None


def run(path, workdir, timeout=1200):
    """Execute one notebook in `workdir`; returns (seconds, problem or None, executed notebook)."""
    path = pathlib.Path(path)
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    try:
        client = nbclient.NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()
    except Exception as error:  # a cell raised, or the kernel died: report it, go on with the next notebook
        return (
            time.perf_counter() - started,
            f"{type(error).__name__}: {str(error).strip().splitlines()[-1:]}",
            notebook,
        )
    seconds = time.perf_counter() - started
    figures = figures_written(workdir, path.stem)
    shown = images_shown(notebook)
    if figures is not None and shown < len(figures):
        return seconds, f"shows {shown} figure(s) inline, but the lab wrote {len(figures)}: {figures}", notebook
    is_lab = any("lab = start(" in cell.source for cell in notebook.cells if cell.cell_type == "code")
    if is_lab and figures is None:
        return seconds, "wrote no config.json (did the lab finish?)", notebook
    return seconds, None, notebook


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python ci/run_notebooks.py")
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--workdir", help="working folder of the kernels (default: a new temporary one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("COURSEKIT_PRESET", "smoke")
    workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="notebooks-"))
    workdir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.notebooks:
        seconds, problem, _ = run(path, workdir)
        failed += problem is not None
        print(
            f"{pathlib.Path(path).name:42s} {seconds:6.1f} s  {'ok' if problem is None else 'FAILED: ' + problem}",
            flush=True,
        )
    print(f"notebooks: {len(args.notebooks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
