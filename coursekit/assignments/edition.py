"""The student edition of the kit, its assignment notebook, a submission's code, and the Gradescope autograder.

- `make_student_edition(DIR)`: the whole kit (library, labs, notebooks, search, NumPy
  reference, public checks) with every exercise blanked, plus `assignment.ipynb` and a README
  for students. No line of a solution is in DIR; an instructor can push DIR as the course's
  repository.
- `collect(SUBMISSION)`: the exercise code a student handed in, from the component files
  and/or the notebook's `%%exercise` cells.
- `assemble(bodies, DIR)`: the blank component files with that code spliced in: what is graded.
- `build_autograder(ZIP)`: Gradescope's autograder (setup.sh, run_autograder, the student
  edition). `run_autograder` grades `/autograder/submission` as an unprivileged user and always
  writes `/autograder/results/results.json`.
"""

import ast
import json
import os
import pathlib
import re
import shutil
import stat
import tempfile
import textwrap
import zipfile

from coursekit.assignments import (
    PACKAGE_DIR,
    STUDENT_FILES,
    blocks,
    exercises_in,
    splice,
    student_version,
    templates,
)
from coursekit.results import write_atomic

ROOT = PACKAGE_DIR.parent
COPIED = ("coursekit", "labs", "tuning", "scripts/setup.sh", "requirements.txt", "run.sh", ".gitignore")
SKIPPED = ("__pycache__", ".pyc", ".ipynb_checkpoints")


def _copy_tree(source, target):
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return
    for path in sorted(source.rglob("*")):
        if path.is_file() and not any(part in str(path) for part in SKIPPED):
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def make_student_edition(folder, source=None):
    """Write the student edition of this kit into `folder`; returns the exercise names.

    `source`: the git URL students clone the edition from (the notebooks' set-up cell);
    defaults to `[tool.coursekit] source` of this kit's pyproject.toml.
    """
    from labs.notebooks import kit_source, write_notebooks

    folder = pathlib.Path(folder)
    missing = [p for p in COPIED if not (ROOT / p).exists()]
    if missing:
        raise ValueError(f"{ROOT} is not a checkout of the kit (no {', '.join(missing)}): run `make` from one")
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty: give a new folder for the student edition")
    source = source or kit_source()
    for path in COPIED:
        _copy_tree(ROOT / path, folder / path)
    names = []
    for filename in STUDENT_FILES:
        text = (PACKAGE_DIR / filename).read_text()
        (folder / "coursekit" / filename).write_text(student_version(text, filename)[0])
        names += exercises_in(text)
    pyproject = (ROOT / "pyproject.toml").read_text()
    (folder / "pyproject.toml").write_text(pyproject.replace(f'source = "{kit_source()}"', f'source = "{source}"'))
    write_notebooks(folder / "notebooks", source)
    (folder / "assignment.ipynb").write_text(assignment_notebook(source))
    (folder / "README.md").write_text(STUDENT_README.format(exercises=", ".join(f"`{n}`" for n in names)))
    return names


# ----------------------------------------------------------------------------------------
# The assignment notebook
# ----------------------------------------------------------------------------------------


def _class_docs():
    """{class name: docstring} of the component files."""
    docs = {}
    for filename in STUDENT_FILES:
        for node in ast.walk(ast.parse((PACKAGE_DIR / filename).read_text())):
            if isinstance(node, ast.ClassDef):
                docs[node.name] = ast.get_docstring(node) or ""
    return docs


def _rule(doc):
    """The update rule of a docstring: its first ```python block, else its first paragraph."""
    if "```python" in doc:
        return "```python\n" + doc.split("```python", 1)[1].split("```", 1)[0].strip() + "\n```"
    return doc.split("\n\n", 1)[0]


def _signature(filename, owner):
    class_name, method = owner.split(".")
    for node in ast.walk(ast.parse((PACKAGE_DIR / filename).read_text())):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    return f"{method}({ast.unparse(item.args)})"
    return method


def assignment_notebook(source):
    """assignment.ipynb: per exercise the rule, an `%%exercise` cell to write in, and a `check` cell."""
    from nbformat.v4 import new_code_cell, new_markdown_cell

    from labs.notebooks import _notebook, render, setup_cell

    docs = _class_docs()
    cells = [
        new_markdown_cell(ASSIGNMENT_INTRO),
        setup_cell(source),
        new_code_cell(
            "%load_ext coursekit.assignments.notebook\nfrom coursekit.assignments import check, check_all, run_lab"
        ),
    ]
    for name, (filename, owner, body) in templates().items():
        class_name = owner.split(".")[0]
        cells += [
            new_markdown_cell(
                f"## Exercise `{name}`: `{owner}` in `coursekit/{filename}`\n\n{_rule(docs.get(class_name, ''))}\n\n"
                f"Your cell is the body of `{_signature(filename, owner)}`, indented for you. "
                "Run it to write your code into the file, then run the check below it."
            ),
            new_code_cell(f"%%exercise {name}\n{textwrap.dedent(body).strip()}"),
            new_code_cell(f'check("{name}")'),
        ]
    cells += [
        new_markdown_cell(
            "## All the checks\n\nThe public checks of every exercise. Grading adds hidden checks (other "
            "seeds, shapes and hyperparameters), so code that only fits these will lose points there."
        ),
        new_code_cell("check_all()"),
        new_markdown_cell(
            "## Your components at work\n\nThe labs use whatever is in the kit's files, yours included. "
            "`run_lab` runs one in a fresh process and shows its figures."
        ),
        new_code_cell('run_lab("optimizer_compare_naive")'),
        new_markdown_cell(
            "## Your optimizers on the bowl\n\nThe lab's bowl with sliders: a learning rate per optimizer, "
            "momentum, rho, the betas and the start point. The red paths are your classes, as your files "
            "hold them now (run this cell again after changing one); the dashed paths are Keras' built-ins. "
            "An exercise not written yet shows its message instead of a path."
        ),
        new_code_cell(
            "from coursekit.interactive import OptimizerExplorer, bowl, current_optimizers\n\n"
            "OptimizerExplorer(bowl, classes=current_optimizers())"
        ),
        new_markdown_cell(SUBMIT),
    ]
    return render(_notebook(cells))


ASSIGNMENT_INTRO = """# Assignment: the chapter's techniques as Keras components

You will write the heart of each component of the course kit: the update rules of SGD,
Momentum, Nesterov, AdaGrad, RMSprop and Adam, Xavier's and He's initial weights, Batch
Normalization, Dropout and weight decay. Everything around them (the classes, the labs, the
NumPy reference in `coursekit/reference.py`) is given.

How it works:

1. Run the set-up cell (in Colab it installs the kit; choose a GPU runtime if you like).
2. For each exercise, read the rule, write your code in the `%%exercise` cell *below the TODO
   comments* (replace the `raise NotImplementedError(...)` line) and run the cell: it writes
   your code into the kit's file. Only the code of these cells (between the exercise markers
   of the files) is graded.
3. Run `check(...)`: your code runs in a separate process against the NumPy reference; the
   table says what passes and, when something fails, gives a hint.

Use `keras.ops` (imported as `ops`) for the math, never NumPy, so that your code runs on every
backend and gradients flow through it."""

SUBMIT = """## Submitting

Save this notebook (File > Download > .ipynb) and upload `assignment.ipynb` to Gradescope. (If
you wrote your code in the files instead, upload `coursekit/optimizers.py`,
`initializers.py`, `layers.py` and `regularizers.py`.) The grader takes the code between the
exercise markers, runs the public checks and hidden ones, and gives points per check."""

STUDENT_README = """# The course kit: student edition

The chapter "Techniques related to learning" as Keras components, labs and a hyperparameter
search, with the components left for you to write. Exercises: {exercises}.

## In Colab

Open `assignment.ipynb` (File > Open notebook > GitHub, this repository). It installs the kit,
and for every exercise shows the rule, a cell to write your code in, and `check("NAME")`, which
runs your code against the NumPy reference and explains what fails. The labs are in
`notebooks/`; they use your components once they are written.

## On your own machine

    bash scripts/setup.sh                              # creates .venv with the pinned packages
    .venv/bin/python -m coursekit.assignments grade .  # every public check, as a table
    .venv/bin/python -m labs optimizer_compare_naive   # a lab with your components

Write your code between the `# >>> exercise NAME` and `# <<< exercise NAME` markers of
`coursekit/optimizers.py`, `initializers.py`, `layers.py` and `regularizers.py` (or in the
notebook's `%%exercise` cells, which write there). Only that code is graded: keep the rest
of the files as they are. A lab whose components are not written yet stops with
"exercise NAME is not implemented yet".

## Submitting

Upload `assignment.ipynb`, or the four component files, to Gradescope.
"""


# ----------------------------------------------------------------------------------------
# A submission's code
# ----------------------------------------------------------------------------------------


# A submission is untrusted: only regular files are read (no symlink, device or FIFO), each of
# at most MAX_FILE_BYTES, at most MAX_ENTRIES names are looked at, and a zip is read in memory,
# member by member, up to MAX_ZIP_BYTES decompressed in all (whatever its headers declare), never
# extracted: a name with `..`, an absolute name, a symlink or a duplicate is refused with a note.
MAX_FILE_BYTES = 32 * 2**20
MAX_ZIP_BYTES = 64 * 2**20
MAX_ENTRIES = 5000
_CHUNK = 2**20


def _wanted(name):
    """Is a file of this (base) name part of what is graded: a component file or a notebook?"""
    return name in STUDENT_FILES or name.endswith(".ipynb")


def _read_capped(stream, limit, what):
    """At most `limit` bytes of `stream`; ValueError if it holds more."""
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ValueError(f"{what} is larger than {limit // 2**20} MiB")


def _zip_member_name(name):
    """A zip member's path as parts, or ValueError when it points outside the archive."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (parts and re.fullmatch(r"[A-Za-z]:", parts[0] or "")):
        raise ValueError(f"absolute name {name!r} refused")
    if ".." in parts:
        raise ValueError(f"name {name!r} with '..' refused")
    return [part for part in parts if part not in ("", ".")]


def _zip_files(path, shown, problems):
    """[(name, bytes)] of the component files and notebooks in a zip, read in memory within the limits."""
    found, seen, total = [], set(), 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ENTRIES:
                problems.append(f"{shown}: {len(members)} entries, more than {MAX_ENTRIES}: only the first are read")
            for info in members[:MAX_ENTRIES]:
                try:
                    parts = _zip_member_name(info.filename)
                except ValueError as error:
                    problems.append(f"{shown}: {error}")
                    continue
                if info.is_dir() or not parts or not _wanted(parts[-1]):
                    continue
                kind = stat.S_IFMT(info.external_attr >> 16)
                if kind not in (0, stat.S_IFREG):
                    problems.append(f"{shown}: {info.filename} is not a regular file (a symlink?): refused")
                    continue
                name = f"{shown}/{'/'.join(parts)}"
                if name in seen:
                    problems.append(f"{shown}: {info.filename} appears twice: the first one is used")
                    continue
                seen.add(name)
                limit = min(MAX_FILE_BYTES, MAX_ZIP_BYTES - total)
                try:
                    with archive.open(info) as member:
                        data = _read_capped(member, limit, f"{shown}: {info.filename}")
                except ValueError as error:
                    problems.append(f"{error} (decompressed): not read")
                    if limit < MAX_FILE_BYTES:
                        break  # the archive's budget is spent
                    continue
                total += len(data)
                found.append((name, data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as error:
        problems.append(f"{shown} could not be read as a zip: {error}")
    except Exception as error:  # zlib, struct, ... a damaged archive is the student's problem, not the grader's
        problems.append(f"{shown} could not be read as a zip: {type(error).__name__}: {error}")
    return found


def _submission_files(submission, problems):
    """[(name relative to the submission, bytes)] of the files that matter, zips' members included."""
    found, looked = [], 0
    for root, folders, files in os.walk(submission):  # symlinked folders are not followed
        folders.sort()
        for filename in sorted(files):
            looked += 1
            if looked > MAX_ENTRIES:
                problems.append(f"more than {MAX_ENTRIES} files in the submission: the rest are not looked at")
                return found
            path = pathlib.Path(root) / filename
            shown = str(path.relative_to(submission))
            is_zip = filename.lower().endswith(".zip")
            if not (_wanted(filename) or is_zip):
                continue
            try:
                info = path.lstat()
            except OSError as error:
                problems.append(f"{shown} could not be read: {error.strerror}")
                continue
            if not stat.S_ISREG(info.st_mode):
                problems.append(f"{shown} is not a regular file (a symlink?): not read")
                continue
            if is_zip:
                found += _zip_files(path, shown, problems)
                continue
            try:
                with open(path, "rb") as handle:
                    found.append((shown, _read_capped(handle, MAX_FILE_BYTES, shown)))
            except (OSError, ValueError) as error:
                problems.append(f"{shown} could not be read: {error}")
    return found


def _notebook_bodies(text):
    """{exercise: code} of the `%%exercise NAME` cells of a notebook's JSON text."""
    notebook = json.loads(text)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells", []), list):
        raise ValueError("not a Jupyter notebook (no list of cells)")
    bodies = {}
    for cell in notebook.get("cells", []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        if not isinstance(source, str):
            continue
        first, _, body = source.partition("\n")
        if first.strip().startswith("%%exercise"):
            name = first.strip()[len("%%exercise") :].strip()
            bodies[name] = body  # a later cell of the same exercise wins, as when the notebook runs
    return bodies


def is_blank(code):
    """True when `code` holds nothing but comments and the `raise NotImplementedError(...)` of the template."""
    lines = [line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    return not lines or (len(lines) == 1 and lines[0].startswith("raise NotImplementedError("))


def collect(submission):
    """The exercise code in a submission folder: ({exercise: code}, {exercise: where it came from}, problems).

    Component files (optimizers.py, ... anywhere in the folder or in a zip in it) come first; a
    notebook's `%%exercise` cells fill in what the files leave blank. Unreadable, oversized or
    refused files are reported in `problems`, never raised.
    """
    submission = pathlib.Path(submission)
    if not submission.is_dir():
        raise ValueError(f"no submission folder at {submission}")
    known = set(templates())
    bodies, origin, problems = {}, {}, []
    files = _submission_files(submission, problems)
    files.sort(key=lambda item: item[0].endswith(".ipynb"))  # component files first (a stable sort)
    for name, data in files:
        name = _printable(name)
        try:
            text = data.decode("utf-8", errors="replace")
            found = _notebook_bodies(text) if name.endswith(".ipynb") else blocks(text)
        except RecursionError:
            problems.append(f"{name} could not be read: nested too deeply")
            continue
        except (ValueError, TypeError, AttributeError) as error:
            problems.append(f"{name} could not be read: {str(error)[:200]}")
            continue
        for exercise, code in found.items():
            if exercise in known and exercise not in bodies and not is_blank(code):
                bodies[exercise] = code
                origin[exercise] = name
    return bodies, origin, [_printable(problem) for problem in problems]


def _printable(text):
    """`text` on one line: a file name or message from a submission may hold newlines or control characters."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def assemble(bodies, folder):
    """Write the blank component files with `bodies` spliced in under `folder`/coursekit/; returns problems."""
    target = pathlib.Path(folder) / "coursekit"
    target.mkdir(parents=True, exist_ok=True)
    problems = []
    for filename in STUDENT_FILES:
        blank, _ = student_version((PACKAGE_DIR / filename).read_text(), filename)
        mine = {name: code for name, code in bodies.items() if name in exercises_in(blank)}
        for name, code in mine.items():
            try:
                blank = splice(blank, {name: code})
            except ValueError as error:
                problems.append(f"exercise {name}: {error}; graded as not written")
        write_atomic(target / filename, blank)
    return problems


# ----------------------------------------------------------------------------------------
# Gradescope
# ----------------------------------------------------------------------------------------

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when the autograder is built: Python, the pinned packages, the kit,
# and the unprivileged user that runs students' code.
set -euo pipefail
cd /autograder/source
if ! command -v python3 >/dev/null; then apt-get update -q && apt-get install -y -q python3 python3-venv; fi
python3 -m venv /autograder/venv || { apt-get update -q && apt-get install -y -q python3-venv && python3 -m venv /autograder/venv; }
/autograder/venv/bin/python -m pip install -q --upgrade pip
/autograder/venv/bin/python -m pip install -q -r requirements.txt
/autograder/venv/bin/python -m pip install -q --no-deps -e .
id student >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin student
chmod -R a+rX /autograder/source /autograder/venv
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission, write
# /autograder/results/results.json, whatever happens (a crash of the grader too). The student's
# code runs as `student` under the grader's limits: set COURSEKIT_LIMIT_MEMORY (default 2G),
# COURSEKIT_LIMIT_CPU_SECONDS, _FILE_SIZE, _OPEN_FILES, _TASKS or COURSEKIT_CHECK_SECONDS here to change them.
ROOT=${AUTOGRADER_ROOT:-/autograder}
PY=${COURSEKIT_PYTHON:-$ROOT/venv/bin/python}
[ -x "$PY" ] || PY=python3
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
cd "$ROOT/source" 2>/dev/null
"$PY" -m coursekit.assignments autograde "$ROOT/submission" --gradescope "$RESULTS" \\
    --user "${COURSEKIT_GRADER_USER-student}" 2> "$ROOT/results/grader.log"
status=$?
if [ $status -ne 0 ] || [ ! -s "$RESULTS" ]; then
    for py in "$PY" python3; do
        "$py" -c 'import json, sys; log = open(sys.argv[2], errors="replace").read().strip().splitlines()[-5:]; json.dump({"score": 0.0, "output": "The autograder could not grade this submission (status " + sys.argv[3] + "). Please tell your instructor.\\n" + "\\n".join(log), "tests": []}, open(sys.argv[1], "w"))' \\
            "$RESULTS" "$ROOT/results/grader.log" "$status" 2>/dev/null && break
    done
    [ -s "$RESULTS" ] || printf '%s\\n' '{"score": 0.0, "output": "The autograder could not grade this submission. Please tell your instructor.", "tests": []}' > "$RESULTS"
fi
exit 0
"""


def build_autograder(path, source=None):
    """Gradescope's autograder zip: setup.sh, run_autograder and the student edition (no solution in it)."""
    path = pathlib.Path(path)
    with tempfile.TemporaryDirectory() as scratch:
        edition = pathlib.Path(scratch) / "edition"
        make_student_edition(edition, source)
        (edition / "setup.sh").write_text(SETUP_SH)
        (edition / "run_autograder").write_text(RUN_AUTOGRADER)
        tmp = path.with_name(f".{path.name}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(edition.rglob("*")):
                if file.is_file():
                    info = zipfile.ZipInfo.from_file(file, file.relative_to(edition).as_posix())
                    if file.name in ("setup.sh", "run_autograder", "run.sh") or file.suffix == ".sh":
                        info.external_attr = 0o755 << 16
                    archive.writestr(info, file.read_bytes())
        tmp.replace(path)
    return path
