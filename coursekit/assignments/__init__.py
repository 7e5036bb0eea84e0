"""Lab assignments: student versions of the components, and their autograder.

The reference sources mark what a student writes with

    # >>> exercise NAME
    # TODO: what to compute, which variables to update, the course's conventions.
    <solution code>
    # <<< exercise NAME

`make_student_package(DIR)` writes the component files to DIR/coursekit/ with each
solution replaced by its TODO block and `raise NotImplementedError`. `grade(DIR)`
holds the student's classes against `coursekit.reference` (see `checks`), one
exercise per subprocess, every check under a time limit.

    python -m coursekit.assignments make DIR
    python -m coursekit.assignments grade DIR [--json FILE]
"""

import pathlib
import re

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]
STUDENT_FILES = ("optimizers.py", "initializers.py", "layers.py", "regularizers.py")
_OPEN = re.compile(r"^(\s*)# >>> exercise (\w+)\s*$")
_CLOSE = re.compile(r"^\s*# <<< exercise (\w+)\s*$")


def exercises_in(text):
    """Exercise names in a source text, in order."""
    return [m.group(2) for m in map(_OPEN.match, text.splitlines()) if m]


def student_version(text):
    """`text` with every exercise's solution replaced by its TODO block and a raise.

    Returns (student text, removed solution lines).
    """
    out, removed, current, in_todo = [], [], None, False
    for line in text.splitlines(keepends=True):
        opened, closed = _OPEN.match(line), _CLOSE.match(line)
        if opened:
            if current:
                raise ValueError(f"exercise {opened.group(2)!r} opens inside exercise {current!r}")
            current, indent, in_todo = opened.group(2), opened.group(1), True
            out.append(line)
        elif closed:
            if closed.group(1) != current:
                raise ValueError(f"exercise marker mismatch: closing {closed.group(1)!r} inside {current!r}")
            out.append(f'{indent}raise NotImplementedError("exercise {current}: write your code here")\n')
            out.append(line)
            current = None
        elif current and in_todo and line.strip().startswith("#"):
            out.append(line)
        elif current:
            in_todo = False
            if line.strip():
                removed.append(line.strip())
        else:
            out.append(line)
    if current:
        raise ValueError(f"exercise {current!r} is never closed")
    return "".join(out), removed


def make_student_package(folder):
    """Write the student component files under `folder`/coursekit/; returns the exercise names."""
    target = pathlib.Path(folder) / "coursekit"
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for filename in STUDENT_FILES:
        text = (PACKAGE_DIR / filename).read_text()
        student, _ = student_version(text)
        (target / filename).write_text(student)
        names += exercises_in(text)
    (pathlib.Path(folder) / "README.md").write_text(_STUDENT_README.format(exercises=", ".join(names)))
    return names


_STUDENT_README = """# coursekit lab assignment

Fill in the TODO blocks in `coursekit/*.py` (exercises: {exercises}). Each TODO says
what to compute, which variables to update and the course's conventions; the class
docstrings state the formulas. Use `keras.ops` only, and write variables through
`self.assign`, `self.assign_add`, `self.assign_sub` in optimizers.

Check your work (from the course kit's folder):

    python -m coursekit.assignments grade PATH/TO/THIS/FOLDER

Run a lab with your own components, e.g. to see your optimizers' paths:

    python -m labs.optimizer_compare_naive --implementation PATH/TO/THIS/FOLDER
"""
