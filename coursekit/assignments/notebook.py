"""The assignment notebook's tools: the `%%exercise NAME` cell magic, and `run_lab`.

    %load_ext coursekit.assignments.notebook

    %%exercise sgd
    # your code: the body of SGD.update_step(self, gradient, variable, learning_rate)
    ...

The cell is the body of the exercise's method; running it writes the code between the
exercise markers of the kit's file (re-indented), after checking that the file still
compiles. A cell that still holds only the TODO comments and the `raise NotImplementedError`
line writes nothing, so code written in the file itself is never overwritten by a blank cell.
"""

import pathlib
import subprocess
import sys

from coursekit.assignments import PACKAGE_DIR, splice, templates
from coursekit.assignments.edition import is_blank
from coursekit.results import write_atomic

KIT_ROOT = PACKAGE_DIR.parent


def write_exercise(name, code, root=KIT_ROOT):
    """Write `code` as exercise `name` into the kit's file; returns a one-line report."""
    known = templates()
    if name not in known:
        return f"unknown exercise {name!r}; the exercises are: {', '.join(known)}"
    filename, owner, _ = known[name]
    if is_blank(code):
        return f"exercise {name}: this cell is still the TODO, so coursekit/{filename} keeps its code"
    path = pathlib.Path(root) / "coursekit" / filename
    try:
        text = splice(path.read_text(), {name: code})
        compile(text, str(path), "exec")
    except SyntaxError as error:
        return (
            f"exercise {name}: NOT written, your code does not compile: {error.msg} ({error.text or ''}".strip() + ")"
        )
    except ValueError as error:
        return f"exercise {name}: NOT written: {error}"
    write_atomic(path, text)
    return f"exercise {name}: written into coursekit/{filename} ({owner}); now run check({name!r})"


def exercise(line, cell):
    """%%exercise NAME: write this cell's code as exercise NAME."""
    print(write_exercise(line.strip(), cell))


def load_ipython_extension(ipython):
    ipython.register_magic_function(exercise, magic_kind="cell", magic_name="exercise")


def run_lab(name, preset="smoke", out="results", seconds=600):
    """Run lab `name` in a fresh process (so it imports the files as they are now) and show its figures."""
    command = [sys.executable, "-m", "labs", name, "--preset", preset, "--out", out, "--quiet"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds, cwd=KIT_ROOT)
    except subprocess.TimeoutExpired:
        print(f"{name}: stopped after {seconds} s")
        return
    print((done.stdout + done.stderr).strip()[-2000:])
    if done.returncode == 0:
        from IPython.display import Image, display

        for figure in sorted((KIT_ROOT / out / name).glob("*.png")):
            display(Image(filename=str(figure)))
