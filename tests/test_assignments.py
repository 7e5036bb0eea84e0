"""Assignments: the student package, the autograder, planted mistakes and broken code."""

import ast
import collections
import shutil
import subprocess
import sys

from conftest import ROOT

from coursekit.assignments import STUDENT_FILES, make_student_package, student_version
from coursekit.assignments.checks import EXERCISES
from coursekit.assignments.grader import format_report, grade


def scores(report):
    return {r["exercise"]: r["score"] for r in report["exercises"]}


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


def test_reference_implementation_scores_full_marks():
    report = grade(ROOT)
    assert report["score"] == report["max_score"] == 10 * len(EXERCISES), format_report(report)


def test_student_package_has_no_solution_and_scores_zero(tmp_path):
    names = make_student_package(tmp_path)
    assert sorted(names) == sorted(EXERCISES)
    for filename in STUDENT_FILES:
        student = (tmp_path / "coursekit" / filename).read_text()
        ast.parse(student)  # valid Python
        original = (ROOT / "coursekit" / filename).read_text()
        _, removed = student_version(original)
        assert removed, filename

        # Every solution line is gone: a line of the solution may remain only as often as it
        # also appears outside the exercises (e.g. the inference branch of BatchNorm).
        def code(text):
            return collections.Counter(
                line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
            )

        reference_code, student_code, removed_count = code(original), code(student), collections.Counter(removed)
        leaked = [line for line in removed_count if student_code[line] != reference_code[line] - removed_count[line]]
        assert not leaked, f"solution lines left in {filename}: {leaked}"
        added = student.count("raise NotImplementedError") - original.count("raise NotImplementedError")
        assert added == sum(1 for n in names if EXERCISES[n][0] == filename)
        assert "# TODO" in student
    report = grade(tmp_path)
    assert report["score"] == 0
    assert "not implemented yet" in hints(report, "adam")
    assert (tmp_path / "README.md").exists()


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
        "        self.assign(\n            velocity,\n            ops.subtract(ops.multiply(velocity, self.momentum), ops.multiply(gradient, lr)),\n        )\n        self.assign_add(variable, velocity)",
        "        self.assign(\n            velocity,\n            ops.add(ops.multiply(velocity, self.momentum), ops.multiply(gradient, lr)),\n        )\n        self.assign_add(variable, velocity)",
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
        "            if self.inverted:\n                outputs = ops.divide(outputs, ops.cast(1.0 - self.rate, inputs.dtype))\n            return outputs",
        "            outputs = ops.divide(outputs, ops.cast(1.0 - self.rate, inputs.dtype))\n            return outputs",
        "does not rescale in training",
    ),
}


def test_planted_classic_mistakes_lose_exactly_their_exercise(tmp_path):
    folder = copy_reference(tmp_path)
    for filename, old, new, _ in MISTAKES.values():
        plant(folder, filename, old, new)
    report = grade(folder)
    for exercise, score in scores(report).items():
        if exercise in MISTAKES:
            assert score == 0, exercise
            assert MISTAKES[exercise][3] in hints(report, exercise), (exercise, hints(report, exercise))
        else:
            assert score == 10, (exercise, hints(report, exercise))


def test_broken_code_is_graded_not_crashed(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CHECK_SECONDS", "5")
    folder = copy_reference(tmp_path)
    plant(
        folder, "layers.py", "class Dropout(keras.layers.Layer):", "class Dropout(keras.layers.Layer)"
    )  # syntax error
    plant(
        folder,
        "regularizers.py",
        "return 0.5 * self.lam * ops.sum(ops.square(weights))",
        "while True:\n            pass",
    )
    plant(
        folder,
        "optimizers.py",
        "self.assign_sub(variable, ops.multiply(gradient, lr))",
        "self.assign_sub(variable, ops.divide(gradient, 0.0))",
    )
    plant(folder, "initializers.py", "return math.sqrt(2.0 / fan_in(shape))", "return [1.0, 2.0]")
    report = grade(folder, ["batchnorm", "dropout", "weight_decay", "sgd", "he", "rmsprop"])
    assert scores(report) == {"batchnorm": 0, "dropout": 0, "weight_decay": 0, "sgd": 0, "he": 0, "rmsprop": 10}
    assert "SyntaxError" in hints(report, "batchnorm") and "line" in hints(report, "dropout")
    assert "ran past its 5 s limit" in hints(report, "weight_decay")
    assert "NaN" in hints(report, "sgd")
    assert "TypeError" in hints(report, "he")  # a list where a number belongs


def test_cli_make_and_grade_json(tmp_path):
    student = tmp_path / "student"

    def run(*args):
        command = [sys.executable, "-m", "coursekit.assignments", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)

    assert run("make", str(student)).returncode == 0
    result = run("grade", str(student), "--exercise", "weight_decay", "--json", str(tmp_path / "report.json"))
    assert result.returncode == 0 and "total: 0/10" in result.stdout
    import json

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["score"] == 0 and report["max_score"] == 10 and len(report["exercises"]) == 1
    assert run("grade", str(tmp_path / "nowhere")).returncode == 2


def test_lab_runs_with_a_student_implementation(tmp_path):
    folder = copy_reference(tmp_path / "impl")
    plant(
        folder,
        "optimizers.py",
        "self.assign_sub(variable, ops.multiply(gradient, lr))",
        "self.assign_sub(variable, ops.multiply(gradient, 0.5 * lr))",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "labs.optimizer_compare_naive",
            "--implementation",
            str(folder),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SGD final (x, y): [-0.35, 0.085]" not in result.stdout  # the student's half-speed SGD moved less
    assert str(folder) in (tmp_path / "out" / "optimizer_compare_naive" / "config.json").read_text()
