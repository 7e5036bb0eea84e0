"""Grading a class safely: limits on every child, hostile submissions, grade-all, resume after a kill.

Every hostile submission here stays within small limits (1 GiB of memory, 8 MiB files, 64
processes, a few CPU seconds), so these tests are safe on a shared machine. They run in the
TensorFlow leg only: the grader's children and their limits do not depend on the backend.
"""

import csv
import dataclasses
import json
import subprocess
import sys
import zipfile

import nbformat
import pytest
from conftest import BACKEND, ROOT, checkout_first_env
from test_assignments import MISTAKES, copy_reference, hints, plant, points

from coursekit.assignments import STUDENT_FILES, blocks
from coursekit.assignments.edition import collect
from coursekit.assignments.grader import format_report, grade
from coursekit.assignments.sandbox import GiB, Limits, MiB, child_environment, mechanisms, parse_size

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="the grader's children and limits are backend-independent: TensorFlow leg"
)

SMALL = Limits(memory=1 * GiB, cpu_seconds=300, file_size=8 * MiB, open_files=64, tasks=64)
WEIGHT_DECAY = "return 0.5 * self.lam * ops.sum(ops.square(weights))"
SGD = "self.assign_sub(variable, ops.multiply(gradient, lr))"
ADAGRAD = "self.assign_add(accumulator, ops.square(gradient))"
MOMENTUM = "self.assign_add(variable, velocity)"
HE = "return math.sqrt(2.0 / fan_in(shape))"
MEMORY_HOG = "import keras\n\n_hog = bytearray(2 * 2**30)  # touched: 2 GiB resident\n"
DISK_WRITER = "open('big.bin', 'wb').write(bytes(64 * 2**20))\n        "
FILE_OPENER = "_files = [open('/dev/null') for _ in range(300)]\n        "
FORK_LOOP = (  # linear, not exponential: each child sleeps until it is killed
    "import os, time\n        for _ in range(500):\n            if os.fork() == 0:\n"
    "                time.sleep(120)\n                os._exit(0)\n        "
)


def exercise(report, name):
    [result] = [r for r in report["exercises"] if r["exercise"] == name]
    return result


def cgroups_here(limits):
    held = mechanisms(limits)
    return held["memory"].startswith("cgroup") and held["tasks"].startswith("cgroup")


def test_sizes_settings_and_the_environment(monkeypatch, tmp_path):
    assert parse_size("2G") == parse_size("2GiB") == 2 * GiB and parse_size("512m") == 512 * MiB
    for bad in ("", "two", "-1G", "0"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)
    monkeypatch.setenv("COURSEKIT_LIMIT_MEMORY", "3G")
    monkeypatch.setenv("COURSEKIT_LIMIT_TASKS", "99")
    assert Limits.from_env(tasks=7) == Limits(memory=3 * GiB, tasks=7)
    monkeypatch.setenv("COURSEKIT_LIMIT_MEMORY", "lots")
    with pytest.raises(ValueError, match="COURSEKIT_LIMIT_MEMORY: expected a size"):
        Limits.from_env()
    monkeypatch.setenv("GITHUB_TOKEN", "secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AUTOGRADER_KEY", "secret")
    monkeypatch.setenv("TF_CPP_API_KEY", "secret")
    env = child_environment(tmp_path, "/kit")
    assert not [value for value in env.values() if value == "secret"]
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path) and env["PYTHONPATH"] == "/kit"
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES"} | {
        "HOME",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONNOUSERSITE",
        "TF_CPP_MIN_LOG_LEVEL",
    } | {k for k in env if k.startswith(("XLA_", "JAX_", "TF_CPP_"))}


def hostile_submission(folder):
    """Memory at import (regularizers), a disk writer (sgd), too many open files (adagrad), a fork loop
    (momentum); adam and the initializers are the reference's."""
    copy_reference(folder)
    plant(folder, "regularizers.py", "import keras\n", MEMORY_HOG)
    plant(folder, "optimizers.py", SGD, DISK_WRITER + SGD)
    plant(folder, "optimizers.py", ADAGRAD, FILE_OPENER + ADAGRAD)
    plant(folder, "optimizers.py", MOMENTUM, FORK_LOOP + MOMENTUM)
    return folder


LIMITS_BROKEN = {
    "weight_decay": "used more than 1 GiB of memory",
    "sgd": "wrote a file larger than 8 MiB",
    "adagrad": "opened more than 64 files at once",
    "momentum": "started more than 64 processes and threads",
}


@pytest.mark.parametrize(
    "cgroups,names",
    [
        (True, ["weight_decay", "sgd", "adagrad", "momentum", "adam", "he"]),
        (False, ["weight_decay", "momentum", "he"]),  # the limits the watchdog holds in place of the cgroups
    ],
    ids=["cgroups", "watchdog"],
)
def test_hostile_submissions_score_zero_on_what_they_break_and_the_rest_is_graded(tmp_path, cgroups, names):
    limits = dataclasses.replace(SMALL, cgroups=cgroups)
    if cgroups and not cgroups_here(limits):
        pytest.skip("no memory and pids cgroup can be made here (the watchdog test covers this machine)")
    folder = hostile_submission(tmp_path / "student")
    report = grade(folder, names, hidden_seed=3, limits=limits)
    text = format_report(report)
    assert points(report) == {name: 0 if name in LIMITS_BROKEN else 10 for name in names}, text
    for name in set(names) & set(LIMITS_BROKEN):
        assert exercise(report, name)["limit"] == LIMITS_BROKEN[name], text
    assert "0 points: your code used more than 1 GiB of memory" in text
    assert report["sandbox"]["memory"].startswith("cgroup" if cgroups else "watchdog")


def test_cpu_seconds(tmp_path):
    """An endless loop under a CPU limit shorter than the check's time limit (the time limit:
    test_assignments.test_forgery_nan_exit_and_endless_loops_score_zero)."""
    folder = copy_reference(tmp_path / "student")
    plant(folder, "regularizers.py", WEIGHT_DECAY, "while True:\n            pass")
    report = grade(folder, ["weight_decay"], hidden_seed=1, limits=Limits(cpu_seconds=8), check_seconds=120)
    assert exercise(report, "weight_decay")["limit"] == "used more than 8 CPU seconds", format_report(report)
    assert "not run: this exercise broke a limit" in hints(report, "weight_decay")


def test_the_child_has_a_scratch_folder_no_secrets_and_no_network(tmp_path, monkeypatch):
    """The student's code reports what it sees through the only channel it has: an exception's message."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_not_for_students")
    folder = copy_reference(tmp_path / "student")
    probe = (
        "import json, os, socket\n        seen = {'cwd': os.getcwd(), 'home': os.environ.get('HOME'), "
        "'secrets': [k for k in os.environ if any(w in k for w in ('TOKEN', 'SECRET', 'GITHUB', 'AWS'))]}\n"
        "        try:\n            socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "            seen['network'] = 'reached'\n        except OSError as error:\n"
        "            seen['network'] = type(error).__name__\n        raise ValueError(json.dumps(seen))"
    )
    plant(folder, "regularizers.py", WEIGHT_DECAY, probe)
    report = grade(folder, ["weight_decay"], hidden=False)
    message = exercise(report, "weight_decay")["checks"][0]["message"]
    seen = json.loads(message[message.index("{") :])
    assert seen["secrets"] == []
    assert seen["cwd"] == seen["home"] and "coursekit-grade-" in seen["cwd"]
    if "no network" in report["sandbox"]["network"]:
        assert seen["network"] != "reached"


# -- submissions that are zips and notebooks -------------------------------------------------


def notebook_from_reference(path, mistakes=None):
    """A notebook with an %%exercise cell per exercise, filled from the reference (as a student would)."""
    solutions = {}
    for filename in STUDENT_FILES:
        solutions.update(blocks((ROOT / "coursekit" / filename).read_text()))
    cells = [nbformat.v4.new_markdown_cell("# my assignment")]
    for name, code in solutions.items():
        for old, new in (mistakes or {}).get(name, []):
            code = code.replace(old, new)
        cells.append(nbformat.v4.new_code_cell(f"%%exercise {name}\n{code}"))
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_zip_submissions_cannot_write_or_read_outside_and_bombs_are_capped(tmp_path):
    submission = tmp_path / "student"
    submission.mkdir()
    notebook = notebook_from_reference(tmp_path / "assignment.ipynb")
    optimizers = (ROOT / "coursekit" / "optimizers.py").read_text()
    with zipfile.ZipFile(submission / "handin.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../../escape/optimizers.py", optimizers)
        archive.writestr("/etc/optimizers.py", optimizers)
        archive.writestr("C:/win/optimizers.py", optimizers)
        link = zipfile.ZipInfo("layers.py")
        link.external_attr = (0o120777 << 16) | 0o777  # a symlink member
        archive.writestr(link, "/etc/passwd")
        archive.writestr("work/assignment.ipynb", notebook.read_text())
        archive.writestr("work/assignment.ipynb", "{}")  # a duplicate name
        archive.writestr("bomb/regularizers.py", b"\0" * (40 * MiB))  # 40 MiB of zeros: a few KiB zipped
        archive.writestr("notes.txt", "not graded")
    (submission / "broken.ipynb").write_text("{ this is not a notebook")
    bodies, origin, problems = collect(submission)
    text = "\n".join(problems)
    assert "'..' refused" in text and "absolute name '/etc/optimizers.py' refused" in text
    assert "absolute name 'C:/win/optimizers.py' refused" in text
    assert "layers.py is not a regular file" in text and "appears twice" in text
    assert "bomb/regularizers.py is larger than 32 MiB (decompressed)" in text
    assert "broken.ipynb could not be read" in text
    assert not (tmp_path / "escape").exists()
    assert set(origin.values()) == {"handin.zip/work/assignment.ipynb"} and len(bodies) == 11


# -- grade-all --------------------------------------------------------------------------------


def reference_files(folder, mistake=None):
    folder.mkdir(parents=True)
    for name in STUDENT_FILES:
        text = (ROOT / "coursekit" / name).read_text()
        if mistake and mistake[0] == name:
            text = text.replace(*mistake[1:3])
        (folder / name).write_text(text)
    return folder


def class_of_submissions(root):
    """Good, partly wrong, hostile (memory), empty, a zip of a notebook, a notebook that is not JSON;
    graded on the initializers' exercises (xavier, he: one child process per student)."""
    reference_files(root / "ada")
    reference_files(root / "bob", MISTAKES["xavier"][:3])
    hostile = reference_files(root / "eve")
    text = (hostile / "initializers.py").read_text()
    (hostile / "initializers.py").write_text(text.replace(HE, "_hog = bytearray(2 * 2**30)\n        " + HE))
    (root / "dan").mkdir()
    (root / "zoe").mkdir()
    notebook = notebook_from_reference(root / "zoe" / "assignment.ipynb", {"he": [("2.0 /", "1.0 /")]})
    with zipfile.ZipFile(root / "zoe" / "submission.zip", "w") as archive:
        archive.write(notebook, "assignment.ipynb")
        archive.writestr("../../../evil.py", "print('escaped')")
    notebook.unlink()
    (root / "kim").mkdir()
    (root / "kim" / "assignment.ipynb").write_text("{ not json")
    return ["ada", "bob", "dan", "eve", "kim", "zoe"]


def grade_all_command(submissions, out, *extra):
    return [
        sys.executable,
        "-m",
        "coursekit.assignments",
        "grade-all",
        str(submissions),
        "--out",
        str(out),
        "--jobs",
        "2",
        "--hidden-seed",
        "5",
        "--memory",
        "1G",
        *[arg for name in ("xavier", "he") for arg in ("--exercise", name)],
        *extra,
    ]


def run(command, **env):
    return subprocess.run(command, cwd=ROOT, env=checkout_first_env(**env), capture_output=True, text=True, timeout=900)


def read_gradebook(path):
    with open(path, newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_grade_all_writes_the_gradebook_and_summary_and_resumes_after_a_kill(tmp_path):
    submissions = tmp_path / "submissions"
    students = class_of_submissions(submissions)
    out = tmp_path / "resumed" / "gradebook.csv"
    killed = run(grade_all_command(submissions, out), COURSEKIT_GRADING_FAULT="student_graded:2")
    assert killed.returncode == -9, killed.stderr[-3000:]
    records = tmp_path / "resumed" / "gradebook" / "students"
    first = {p.name: p.read_bytes() for p in records.glob("*.json") if not p.name.endswith(".gradescope.json")}
    assert len(first) == 2 and not out.exists()

    resumed = run(grade_all_command(submissions, out))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "2 already graded, 4 to grade" in resumed.stdout
    for name, content in first.items():  # not graded twice
        assert (records / name).read_bytes() == content

    fresh_out = tmp_path / "fresh" / "gradebook.csv"
    fresh = run(grade_all_command(submissions, fresh_out))
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]
    assert out.read_text() == fresh_out.read_text()  # killed and resumed: the same gradebook

    book = read_gradebook(out)
    assert sorted(book) == students
    assert [book["ada"][k] for k in ("xavier", "he", "total", "max_total")] == ["10", "10", "20", "20"]
    assert float(book["bob"]["xavier"]) < 10 and book["bob"]["he"] == "10"
    assert book["eve"]["he"] == "0" and "he: used more than 1 GiB of memory" in book["eve"]["problems"]
    assert book["eve"]["xavier"] == "10"
    assert book["dan"]["total"] == "0" and "no exercise code found" in book["dan"]["problems"]
    assert book["kim"]["total"] == "0" and "could not be read" in book["kim"]["problems"]
    assert float(book["zoe"]["he"]) < 10 and book["zoe"]["xavier"] == "10"
    assert "'..' refused" in book["zoe"]["problems"]
    assert not (tmp_path / "evil.py").exists() and not (submissions.parent / "evil.py").exists()

    folder = tmp_path / "resumed" / "gradebook"
    for student in students:
        assert (folder / "students" / f"{student}.txt").read_text().strip()
        gradescope = json.loads((folder / "students" / f"{student}.gradescope.json").read_text())
        assert gradescope["score"] == float(book[student]["total"])
    summary = (folder / "summary.md").read_text()
    assert "| xavier |" in summary and "what to go over in class" in summary
    assert "not fan_out" in summary and "is the 2 missing?" in summary  # bob's and zoe's mistakes, with hints
    assert (folder / "summary.png").stat().st_size > 10_000
    with open(folder / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    means = {r["exercise"]: float(r["mean"]) for r in rows if r["table"] == "exercise"}
    assert set(means) == {"xavier", "he"}
    for name, mean in means.items():
        assert mean == pytest.approx(sum(float(row[name]) for row in book.values()) / len(book), abs=0.01)
    assert json.loads((folder / "settings.json").read_text())["hidden_seed"] == 5

    other = run(grade_all_command(submissions, out, "--all-or-nothing"))
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "other settings" in other.stderr


def test_grade_all_command_line_errors_are_one_line(tmp_path, capsys):
    from coursekit.assignments.__main__ import main

    for args, message in (
        (["grade-all", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g.csv")], "no submissions folder"),
        (["grade-all", str(tmp_path), "--out", str(tmp_path / "g.txt")], "must name a .csv file"),
        (["grade-all", str(tmp_path), "--out", str(tmp_path / "g.csv"), "--memory", "lots"], "expected a size"),
        (["grade-all", str(tmp_path), "--out", str(tmp_path / "g.csv"), "--jobs", "0"], "positive integer"),
        (["grade", str(tmp_path), "--processes", "-3"], "positive integer"),
    ):
        try:
            status = main(args)
        except SystemExit as stop:
            status = stop.code
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and message in err, err
