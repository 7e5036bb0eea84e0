"""Lab assignments: a student edition of the kit, checks students run, and a grader that cannot be fooled.

The reference sources mark what a student writes with

    # >>> exercise NAME
    # TODO: what to compute, which variables to update, the course's conventions.
    <solution code>
    # <<< exercise NAME

The student edition (`python -m coursekit.assignments make DIR`) is the whole kit with every
solution replaced by its TODO block and `raise NotImplementedError("exercise NAME is not
implemented yet ...")`, plus `assignment.ipynb`. Only the code between the markers is the
student's: `blocks` reads it out of a file or a notebook, `splice` writes it into a file.

    from coursekit.assignments import check, check_all   # in the student's notebook
    python -m coursekit.assignments grade DIR [--json FILE] [--gradescope FILE]
    python -m coursekit.assignments grade-all SUBMISSIONS --out gradebook.csv [--jobs N]
    python -m coursekit.assignments autograder autograder.zip

See `grader` (how grading works), `exercises` (the checks), `sandbox` (the limits on every
child process), `gradebook` (a whole class) and `edition` (the student edition, a submission's
code, the notebook and the Gradescope autograder).
"""

import ast
import pathlib
import re
import textwrap

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]
STUDENT_FILES = ("optimizers.py", "initializers.py", "layers.py", "regularizers.py")
_OPEN = re.compile(r"^(\s*)# >>> exercise (\w+)\s*$")
_CLOSE = re.compile(r"^\s*# <<< exercise (\w+)\s*$")


def exercises_in(text):
    """Exercise names in a source text, in order."""
    return [m.group(2) for m in map(_OPEN.match, text.splitlines()) if m]


def _owners(text):
    """{exercise: "Class.method"} from the definitions that enclose each marker."""
    owners, tree = {}, ast.parse(text)
    names = {index + 1: m.group(2) for index, m in enumerate(map(_OPEN.match, text.splitlines())) if m}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    for line, name in names.items():
                        if item.lineno <= line <= item.end_lineno:
                            owners[name] = f"{node.name}.{item.name}"
    return owners


def _parse(text):
    """[(kind, payload, line)] with kind "text", or "block" and payload (name, indent, body lines)."""
    parts, current = [], None
    for line in text.splitlines(keepends=True):
        opened, closed = _OPEN.match(line), _CLOSE.match(line)
        if opened:
            if current:
                raise ValueError(f"exercise {opened.group(2)!r} opens inside exercise {current[0]!r}")
            parts.append(("text", line))
            current = (opened.group(2), opened.group(1), [])
        elif closed:
            if current is None or closed.group(1) != current[0]:
                raise ValueError(f"exercise marker mismatch: closing {closed.group(1)!r}")
            parts.append(("block", current))
            parts.append(("text", line))
            current = None
        elif current:
            current[2].append(line)
        else:
            parts.append(("text", line))
    if current:
        raise ValueError(f"exercise {current[0]!r} is never closed")
    return parts


def blocks(text):
    """{exercise: its code} in a source text, dedented (what the student wrote between the markers)."""
    found = {}
    for kind, part in _parse(text):
        if kind == "block":
            name, _, lines = part
            found[name] = textwrap.dedent("".join(lines))
    return found


def splice(text, bodies):
    """`text` with the blocks named in `bodies` ({exercise: code}) replaced, re-indented to their markers."""
    out, unknown = [], set(bodies) - set(exercises_in(text))
    if unknown:
        raise ValueError(f"no exercise {sorted(unknown)} in this file")
    for kind, part in _parse(text):
        if kind == "text":
            out.append(part)
            continue
        name, indent, lines = part
        if name not in bodies:
            out.extend(lines)
            continue
        body = textwrap.dedent(bodies[name]).strip("\n")
        if _OPEN.search(body) or any(_OPEN.match(line) or _CLOSE.match(line) for line in body.splitlines()):
            raise ValueError(f"exercise {name}: the code may not contain exercise markers")
        out.extend(f"{indent}{line}\n" if line.strip() else "\n" for line in body.splitlines())
    return "".join(out)


def not_implemented_line(name, filename, owner):
    return f'raise NotImplementedError("exercise {name} is not implemented yet: write it in coursekit/{filename} ({owner})")'


def student_version(text, filename="?"):
    """`text` with every exercise's solution replaced by its TODO comments and a raise.

    Returns (student text, removed solution lines).
    """
    owners, bodies, removed = _owners(text), {}, []
    for name, body in blocks(text).items():
        lines = body.splitlines()
        todo = []
        for line in lines:
            if not line.strip().startswith("#"):
                break
            todo.append(line)
        removed += [line.strip() for line in lines[len(todo) :] if line.strip()]
        bodies[name] = "\n".join([*todo, not_implemented_line(name, filename, owners.get(name, "?"))])
    return splice(text, bodies), removed


def templates():
    """{exercise: (component file, Class.method, the blank body a student starts from)}."""
    out = {}
    for filename in STUDENT_FILES:
        text = (PACKAGE_DIR / filename).read_text()
        blank, _ = student_version(text, filename)
        owners = _owners(text)
        for name, body in blocks(blank).items():
            out[name] = (filename, owners.get(name, "?"), body)
    return out


def is_template(code, template):
    """True when `code` is still the untouched TODO block (whitespace aside)."""

    def normal(text):
        return [line.rstrip() for line in textwrap.dedent(text).strip().splitlines()]

    return normal(code) == normal(template)


def make_student_package(folder):
    """Write only the blank component files under `folder`/coursekit/ (see `edition` for the whole kit)."""
    target = pathlib.Path(folder) / "coursekit"
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for filename in STUDENT_FILES:
        text = (PACKAGE_DIR / filename).read_text()
        (target / filename).write_text(student_version(text, filename)[0])
        names += exercises_in(text)
    return names


def check(*exercises, folder=None):
    """Run the public checks of `exercises` (default: all) on this kit's components; see `grader.check`."""
    from coursekit.assignments.grader import check as run

    return run(*exercises, folder=folder)


def check_all(folder=None):
    """Every exercise's public checks, as a table."""
    return check(folder=folder)


def run_lab(name, preset="smoke"):
    """Run a lab in a fresh process with the components as they are now, and show its figures (notebooks)."""
    from coursekit.assignments.notebook import run_lab as run

    return run(name, preset)
