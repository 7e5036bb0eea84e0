"""Assignments: the student edition, the grader (that student code cannot fool), Gradescope, the notebook."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import keras
import nbformat
import pytest
from conftest import BACKEND, ROOT

from coursekit.assignments import STUDENT_FILES, blocks, exercises_in, harness, splice, student_version, templates
from coursekit.assignments.edition import assemble, collect, make_student_edition
from coursekit.assignments.exercises import EXERCISES, CheckFailed, grading_checks
from coursekit.assignments.grader import format_report, grade, gradescope_results, points

ALL = list(EXERCISES)
tensorflow_leg_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="kernel and Gradescope runs are backend-independent: run in the TensorFlow leg"
)


def hints(report, exercise):
    [result] = [r for r in report["exercises"] if r["exercise"] == exercise]
    return " ".join(f"{c['message']} {c.get('hint') or ''}" for c in result["checks"] if not c["passed"])


def copy_reference(folder):
    (folder / "coursekit").mkdir(parents=True)
    for name in STUDENT_FILES:
        shutil.copy(ROOT / "coursekit" / name, folder / "coursekit" / name)
    return folder


def plant(folder, filename, old, new):
    path = folder / "coursekit" / filename
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {filename}"
    path.write_text(text.replace(old, new))


def strict_json(data):
    return json.loads(json.dumps(data, allow_nan=False))


# -- the exercise blocks ------------------------------------------------------------------


def test_blocks_splice_round_trip_and_blank_versions():
    for filename in STUDENT_FILES:
        text = (ROOT / "coursekit" / filename).read_text()
        assert splice(text, blocks(text)) == text
        blank, removed = student_version(text, filename)
        assert removed and exercises_in(blank) == exercises_in(text)
        assert set(blocks(splice(blank, blocks(text)))) == set(blocks(text))
    assert set(templates()) == set(EXERCISES)
    with pytest.raises(ValueError, match="exercise markers"):
        splice((ROOT / "coursekit" / "regularizers.py").read_text(), {"weight_decay": "# >>> exercise sgd\nx = 1"})


# -- grading: the reference, Gradescope's format, planted mistakes -------------------------


def test_reference_scores_full_marks_in_gradescope_format():
    report = grade(ROOT, hidden_seed=7)
    assert report["score"] == report["max_score"] == 10 * len(EXERCISES), format_report(report)
    results = strict_json(gradescope_results(report))
    assert results["score"] == 10 * len(EXERCISES)
    checks = [c for r in report["exercises"] for c in r["checks"]]
    assert len(results["tests"]) == len(checks)
    for test in results["tests"]:
        assert set(test) == {"name", "score", "max_score", "output", "visibility"}
        exercise, _, check = test["name"].partition(": ")
        assert exercise in EXERCISES and check
        assert test["visibility"] in ("visible", "after_due_date") and test["score"] == test["max_score"] > 0
    assert {t["visibility"] for t in results["tests"]} == {"visible", "after_due_date"}
    for result in report["exercises"]:
        assert sum(c["max_points"] for c in result["checks"]) == 10
        assert any(c["hidden"] for c in result["checks"]) and any(not c["hidden"] for c in result["checks"])


# Grading seeds: 133345903 once failed the reference's BatchNorm (float32 batch statistics of
# shifted, narrow features judged elementwise where y = gamma * x_hat + beta cancels to 0).
FEW_SEEDS = [133345903, 247, 307, *range(6)]
MANY_SEEDS = range(1000, 1400)


def failures_of_hidden_checks(seeds, exercises=ALL):
    """Run the kit's own components on the hidden checks of each grading seed, in this process."""
    failed = []
    for seed in seeds:
        for name in exercises:
            for check in (c for c in grading_checks(name, seed) if c.hidden):
                try:
                    check.judge(harness.PROBES[check.kind](**check.args))
                except CheckFailed as failure:
                    failed.append((seed, check.id, str(failure), failure.error, failure.hint))
    return failed


@pytest.mark.parametrize("seeds", [FEW_SEEDS, pytest.param(MANY_SEEDS, marks=pytest.mark.slow)], ids=["few", "many"])
def test_the_reference_passes_the_hidden_checks_of_every_grading_seed(seeds):
    assert failures_of_hidden_checks(seeds) == []


def test_the_hidden_batchnorm_check_catches_the_unbiased_variance_for_every_seed(monkeypatch):
    moments = keras.ops.moments

    def unbiased_moments(x, axes, **kwargs):
        mean, variance = moments(x, axes=axes, **kwargs)
        return mean, variance * x.shape[0] / (x.shape[0] - 1)

    monkeypatch.setattr(keras.ops, "moments", unbiased_moments)
    failed = failures_of_hidden_checks(FEW_SEEDS, ["batchnorm"])
    assert [seed for seed, *_ in failed] == FEW_SEEDS
    assert all("biased variance" in hint for *_, hint in failed), failed


MISTAKES = {
    "adagrad": (
        "optimizers.py",
        "ops.add(ops.sqrt(accumulator), self.epsilon)",
        "ops.sqrt(ops.add(accumulator, self.epsilon))",
        "is epsilon inside the square root?",
    ),
    "adam": (
        "optimizers.py",
        "lr_t = ops.divide(ops.multiply(lr, ops.sqrt(1 - beta_2_power)), 1 - beta_1_power)",
        "lr_t = lr",
        "no bias correction in Adam?",
    ),
    "momentum": (
        "optimizers.py",
        "ops.subtract(ops.multiply(velocity, self.momentum), ops.multiply(gradient, lr)),\n        )\n        self.assign_add(variable, velocity)",
        "ops.add(ops.multiply(velocity, self.momentum), ops.multiply(gradient, lr)),\n        )\n        self.assign_add(variable, velocity)",
        "momentum sign flipped?",
    ),
    "xavier": (
        "initializers.py",
        "return 1.0 / math.sqrt(fan_in(shape))",
        "return 1.0 / math.sqrt(shape[-1])",
        "not fan_out",
    ),
    "batchnorm": (
        "layers.py",
        "mean, variance = ops.moments(x, axes=self._reduction_axes)",
        "mean, variance = ops.moments(x, axes=self._reduction_axes)\n            variance = variance * ops.shape(x)[0] / (ops.shape(x)[0] - 1)",
        "biased variance",
    ),
    "dropout": (
        "layers.py",
        "            if self.inverted:\n                outputs = ops.divide(outputs, ops.cast(1.0 - self.rate, inputs.dtype))",
        "            if True:\n                outputs = ops.divide(outputs, ops.cast(1.0 - self.rate, inputs.dtype))",
        "does not rescale in training",
    ),
}


def test_planted_classic_mistakes_lose_points_only_in_their_exercise_with_the_hint(tmp_path):
    folder = copy_reference(tmp_path)
    for filename, old, new, _ in MISTAKES.values():
        plant(folder, filename, old, new)
    report = grade(folder, hidden_seed=11)
    results = gradescope_results(report)
    for exercise, score in points(report).items():
        if exercise in MISTAKES:
            assert score < 10, exercise
            assert MISTAKES[exercise][3] in hints(report, exercise), (exercise, hints(report, exercise))
            failed = [
                t for t in results["tests"] if t["name"].startswith(f"{exercise}: ") and t["score"] < t["max_score"]
            ]
            assert failed and any(MISTAKES[exercise][3] in t["output"] for t in failed)
        else:
            assert score == 10, (exercise, hints(report, exercise))


def test_partial_credit_and_all_or_nothing(tmp_path):
    folder = copy_reference(tmp_path)  # Dropout rescaled even when not inverted: the inverted checks still pass
    plant(folder, "layers.py", *MISTAKES["dropout"][1:3])
    partial = points(grade(folder, ["dropout"], hidden_seed=3))["dropout"]
    assert 0 < partial < 10
    assert points(grade(folder, ["dropout"], hidden_seed=3, all_or_nothing=True))["dropout"] == 0


# -- student code cannot change its own grade ----------------------------------------------

FORGERY = """
        import atexit, json, os, sys
        line = "@@RESULT@@ " + json.dumps({"exercise": "weight_decay", "checks": [{"check": "x", "passed": True}]})
        print(line)
        atexit.register(print, line)
        fake = {"event": "result", "ok": True, "values": {"penalty": {"__array__": {"dtype": "float64", "shape": [], "data": "AAAAAAAA8D8="}}}}
        for probe in ("weight_decay/penalty 0.5 * lam * sum(W**2)", "weight_decay/gradient lam * W (autodiff)"):
            os.write(int(sys.argv[1]), (json.dumps({**fake, "id": probe}) + "\\n").encode())
        os.write(int(sys.argv[1]), b'{"event": "done"}\\n')
        raise NotImplementedError("not written")"""


def test_forgery_nan_exit_and_endless_loops_score_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CHECK_SECONDS", "20")  # a training check takes seconds on a loaded machine
    folder = copy_reference(tmp_path)
    plant(folder, "regularizers.py", "return 0.5 * self.lam * ops.sum(ops.square(weights))", FORGERY.strip("\n")[8:])
    plant(folder, "initializers.py", "return 1.0 / math.sqrt(fan_in(shape))", 'return float("nan")')
    plant(folder, "initializers.py", "return math.sqrt(2.0 / fan_in(shape))", "return [1.0, 2.0]")
    plant(folder, "layers.py", "import keras\n", "import sys\n\nimport keras\n\nsys.exit(0)\n")
    plant(
        folder,
        "optimizers.py",
        "self.assign_sub(variable, ops.multiply(gradient, lr))",
        "while True:\n            pass",
    )
    report = grade(folder, ["sgd", "adagrad", "xavier", "he", "batchnorm", "weight_decay"], hidden_seed=5)
    assert points(report) == {"sgd": 0, "adagrad": 10, "xavier": 0, "he": 0, "batchnorm": 0, "weight_decay": 0}
    assert "timed out after 20 s" in hints(report, "sgd")
    assert [r["limit"] for r in report["exercises"] if r["exercise"] == "sgd"] == ["timed out after 20 s"]
    assert "NaN" in hints(report, "xavier") and "TypeError" in hints(report, "he")
    assert "while loading your code" in hints(report, "batchnorm") and "SystemExit" in hints(report, "batchnorm")
    assert "not implemented yet" in hints(report, "weight_decay") or "two results" in hints(report, "weight_decay")
    strict_json(report)


def test_a_syntax_error_is_a_graded_failure_with_its_line(tmp_path):
    folder = copy_reference(tmp_path)
    plant(folder, "layers.py", "class Dropout(keras.layers.Layer):", "class Dropout(keras.layers.Layer)")
    report = grade(folder, ["dropout", "weight_decay"], hidden=False)
    assert points(report) == {"dropout": 0, "weight_decay": 7}
    assert "SyntaxError" in hints(report, "dropout") and "line" in hints(report, "dropout")


def test_running_as_another_user_works_or_says_why(tmp_path):
    if os.geteuid() != 0:
        with pytest.raises(ValueError, match="needs root"):
            grade(ROOT, ["weight_decay"], hidden=False, user="nobody")
        return
    try:
        report = grade(ROOT, ["weight_decay"], hidden=False, user="nobody")
    except ValueError as error:  # e.g. this Python lives under /root, which nobody may enter
        assert "cannot run" in str(error)
        return
    assert points(report) == {"weight_decay": 7}


# -- the student edition -------------------------------------------------------------------


def solution_lines():
    """Every line of a solution that says something and occurs only in solutions.

    Left out: brackets, bare names, and the first line of a call split over lines (`self.assign_sub(`),
    which the TODO comments name too.
    """
    found = set()
    for filename in STUDENT_FILES:
        text = (ROOT / "coursekit" / filename).read_text()
        blank, removed = student_version(text, filename)
        outside = {line.strip() for line in blank.splitlines()}
        found |= {
            line
            for line in removed
            if len(line) >= 14 and any(c in line for c in "(=*/+") and not line.endswith("(") and line not in outside
        }
    return found


def edition_texts(folder):
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            if path.suffix == ".ipynb":
                text += "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
            yield path, text


def test_student_edition_has_no_solution_and_runs(tmp_path):
    folder = tmp_path / "edition"
    names = make_student_edition(folder, source="https://example.org/course/student-kit.git")
    assert sorted(names) == sorted(EXERCISES)
    for path in ("assignment.ipynb", "README.md", "coursekit/reference.py", "coursekit/assignments/exercises.py"):
        assert (folder / path).is_file(), path
    assert not (folder / "tests").exists() and not (folder / "benchmarks").exists()
    secret = solution_lines()
    assert len(secret) > 30
    leaks = [
        (path.relative_to(folder), line) for path, text in edition_texts(folder) for line in secret if line in text
    ]
    assert not leaks, leaks
    for name in STUDENT_FILES:
        compile((folder / "coursekit" / name).read_text(), name, "exec")
    assert (
        "https://example.org/course/student-kit.git"
        in (folder / "notebooks" / "optimizer_compare_naive.ipynb").read_text()
    )
    result = subprocess.run(
        [sys.executable, "-m", "labs.optimizer_compare_naive", "--out", str(tmp_path / "out")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "optimizer_compare_naive: error: exercise sgd is not implemented yet: "
        "write it in coursekit/optimizers.py (SGD.update_step)"
    )
    blank = grade(folder, ["adam", "he"], hidden=False)
    assert blank["score"] == 0 and "not implemented yet" in hints(blank, "adam")


def test_cli_make_grade_and_reports(tmp_path):
    def run(*args):
        command = [sys.executable, "-m", "coursekit.assignments", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)

    assert run("make", str(tmp_path / "edition")).returncode == 0
    result = run(
        "grade",
        str(tmp_path / "edition"),
        "--exercise",
        "weight_decay",
        "--json",
        str(tmp_path / "report.json"),
        "--gradescope",
        str(tmp_path / "results.json"),
    )
    assert result.returncode == 0 and "total: 0/10" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["score"] == 0 and report["max_score"] == 10 and len(report["exercises"]) == 1
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 0
    bad = run("grade", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and bad.stderr.strip().startswith("grade: error: no coursekit/ folder")
    assert run("make", str(tmp_path / "edition")).returncode == 2  # not an empty folder


# -- submissions: files or the notebook's cells --------------------------------------------


def reference_notebook(folder, mistakes=None):
    """The student edition's assignment.ipynb with its cells filled as a student would, from the reference."""
    nb = nbformat.read(folder / "assignment.ipynb", as_version=4)
    solutions = {}
    for filename in STUDENT_FILES:
        solutions.update(blocks((ROOT / "coursekit" / filename).read_text()))
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("%%exercise "):
            name = cell.source.splitlines()[0].split()[1]
            code = solutions[name]
            for old, new in (mistakes or {}).get(name, []):
                code = code.replace(old, new)
            cell.source = f"%%exercise {name}\n{code}"
    return nb


def test_collect_and_assemble_take_only_the_exercise_code(tmp_path):
    edition = tmp_path / "edition"
    make_student_edition(edition)
    submission = tmp_path / "submission"
    submission.mkdir()
    nbformat.write(reference_notebook(edition), submission / "assignment.ipynb")
    (submission / "optimizers.py").write_text(
        (ROOT / "coursekit" / "optimizers.py")
        .read_text()
        .replace("import keras\n", "import keras\nimport os\nos._exit(3)\n")
    )
    bodies, origin, problems = collect(submission)
    assert set(bodies) == set(EXERCISES) and not problems
    assert origin["sgd"] == "optimizers.py" and origin["he"] == "assignment.ipynb"
    assert not assemble(bodies, tmp_path / "graded")
    graded = (tmp_path / "graded" / "coursekit" / "optimizers.py").read_text()
    assert "os._exit(3)" not in graded  # only the code between the markers is taken
    assert blocks(graded) == blocks((ROOT / "coursekit" / "optimizers.py").read_text())


# -- in a real Jupyter kernel, and on Gradescope --------------------------------------------


def execute(notebook, cwd):
    import nbclient

    nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return "\n".join(
        str(output.get("text") or output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


@tensorflow_leg_only
def test_assignment_notebook_in_a_kernel_blank_then_with_the_reference(tmp_path):
    folder = tmp_path / "edition"
    make_student_edition(folder)
    blank = execute(nbformat.read(folder / "assignment.ipynb", as_version=4), folder)
    assert blank.count("not implemented yet") >= len(EXERCISES) and "total: 0/75" in blank
    assert "this cell is still the TODO" in blank
    for name in STUDENT_FILES:  # the reference files copied in: the untouched cells keep them
        shutil.copy(ROOT / "coursekit" / name, folder / "coursekit" / name)
    filled = nbformat.read(folder / "assignment.ipynb", as_version=4)
    done = execute(filled, folder)
    assert "total: 75/75" in done and "not implemented yet" not in done
    html = [o for c in filled.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert len(html) == len(EXERCISES) + 1
    assert any("image/png" in o.get("data", {}) for c in filled.cells for o in c.get("outputs", []))


def test_the_exercise_cell_writes_the_file_refuses_bad_code_and_keeps_code_under_a_blank_cell(tmp_path):
    from coursekit.assignments.notebook import write_exercise

    folder = tmp_path / "edition"
    make_student_edition(folder)
    path = folder / "coursekit" / "regularizers.py"
    blank = path.read_text()
    [template] = [
        cell.source
        for cell in nbformat.read(folder / "assignment.ipynb", as_version=4).cells
        if cell.source.startswith("%%exercise weight_decay")
    ]
    assert "still the TODO" in write_exercise("weight_decay", template.split("\n", 1)[1], folder)
    assert path.read_text() == blank
    assert "NOT written" in write_exercise("weight_decay", "return 0.5 * self.lam * (", folder)
    assert path.read_text() == blank
    assert "written into coursekit/regularizers.py" in write_exercise(
        "weight_decay", "return 0.5 * self.lam * ops.sum(ops.square(weights))", folder
    )
    assert "        return 0.5 * self.lam * ops.sum(ops.square(weights))\n" in path.read_text()
    report = grade(folder, ["weight_decay"], hidden=False)
    assert points(report) == {"weight_decay": 7}
    assert "unknown exercise" in write_exercise("momentun", "pass", folder)


def autograder(tmp_path):
    archive = tmp_path / "autograder.zip"
    result = subprocess.run(
        [sys.executable, "-m", "coursekit.assignments", "autograder", str(archive)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        assert {"setup.sh", "run_autograder", "requirements.txt", "coursekit/assignments/grader.py"} <= set(names)
        assert not any(name.startswith("tests/") for name in names)
        zipped.extractall(tmp_path / "autograder" / "source")
    return tmp_path / "autograder"


def run_autograder(root, submission_files, **env):
    shutil.rmtree(root / "submission", ignore_errors=True)
    shutil.rmtree(root / "results", ignore_errors=True)
    (root / "submission").mkdir()
    for name, content in submission_files.items():
        (root / "submission" / name).write_text(content)
    run = subprocess.run(
        ["bash", str(root / "source" / "run_autograder")],
        env={
            **os.environ,
            "AUTOGRADER_ROOT": str(root),
            "COURSEKIT_PYTHON": sys.executable,
            "COURSEKIT_GRADER_USER": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert isinstance(results["score"], float) and isinstance(results.get("tests", []), list)
    return results


@tensorflow_leg_only
def test_autograder_zip_grades_good_broken_and_crashing_submissions(tmp_path):
    root = autograder(tmp_path)
    reference = {name: (ROOT / "coursekit" / name).read_text() for name in STUDENT_FILES}
    good = run_autograder(root, reference)
    assert good["score"] == 10 * len(EXERCISES), good["output"]

    broken = dict(reference)
    broken["optimizers.py"] = broken["optimizers.py"].replace(MISTAKES["adam"][1], MISTAKES["adam"][2])
    broken["layers.py"] = broken["layers.py"].replace(
        "ops.moments(x, axes=self._reduction_axes)", "ops.moments(x, axes="
    )
    results = run_autograder(root, broken)
    by_exercise = {}
    for test in results["tests"]:
        by_exercise.setdefault(test["name"].split(":")[0], []).append(test)
    assert sum(t["score"] for t in by_exercise["adam"]) < 10
    assert any("no bias correction" in t["output"] for t in by_exercise["adam"])
    assert sum(t["score"] for t in by_exercise["batchnorm"]) == 0
    assert all(sum(t["score"] for t in by_exercise[name]) == 10 for name in ("sgd", "he", "weight_decay"))

    crashing = {
        "optimizers.py": reference["optimizers.py"].replace(
            "lr = ops.cast(learning_rate, variable.dtype)\n        gradient = ops.cast(gradient, variable.dtype)\n        self.assign_sub",
            "import os\n        os._exit(3)\n        self.assign_sub",
        ),
        "assignment.ipynb": "{ this is not a notebook",
    }
    results = run_autograder(root, crashing)
    assert results["score"] < 10 * len(EXERCISES) and "could not be read" in results["output"]
    assert all(t["score"] == 0 for t in results["tests"] if t["name"].startswith("sgd:"))

    broken_grader = run_autograder(root, reference, COURSEKIT_PYTHON="/bin/false")
    assert broken_grader["score"] == 0.0 and "could not grade" in broken_grader["output"]
