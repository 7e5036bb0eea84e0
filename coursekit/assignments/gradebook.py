"""Grade a whole class into a gradebook: `python -m coursekit.assignments grade-all SUBMISSIONS --out gradebook.csv`.

`SUBMISSIONS/<student>/` holds what a student handed in, as Gradescope's `autograde` takes it:
the component files, `assignment.ipynb`, or a zip of either. Every student is graded by
`grade_submission` (the one mechanism `autograde` uses too: collect the code, splice it into
the blank kit, grade it in limited child processes), `jobs` students at once, with one hidden
seed for the whole class. Next to `gradebook.csv`, the folder `gradebook/` holds:

- `students/<student>.json`: the student's result (report, Gradescope results, problems),
  written whole once the student is graded, with `<student>.txt` (the report as the student
  would read it) and `<student>.gradescope.json` beside it;
- `settings.json`: the hidden seed and the settings of the run;
- `summary.csv`, `summary.md`, `summary.png`: per exercise the mean points, and the checks
  failed most often with their hints: what to go over in class.

Resumable: a run that is killed and started again grades only the students that have no result
file yet (with the same seed, read back from `settings.json`), and rebuilds the gradebook and
the summary from every result file. One student's broken, hostile or empty submission never
stops the others: whatever goes wrong is that student's `problems`.
"""

import collections
import concurrent.futures
import csv
import io
import json
import os
import pathlib
import secrets
import signal
import tempfile
import threading
import time

from coursekit.assignments import edition, grader
from coursekit.assignments.exercises import EXERCISES
from coursekit.results import write_atomic, write_json

FAULT_VARIABLE = "COURSEKIT_GRADING_FAULT"  # "student_graded:N": SIGKILL once N students are written (tests)
MOST_FAILED = 12  # checks listed in the summary
# Collecting and splicing parse Python (ast) in this process; CPython 3.11's parser is not safe to
# run from several threads at once ("AST constructor recursion depth mismatch"): one at a time.
_AST_LOCK = threading.Lock()


def grade_submission(
    submission,
    *,
    hidden_seed=None,
    all_or_nothing=False,
    user=None,
    limits=None,
    exercises=None,
    workers=2,
    check_seconds=None,
):
    """Grade one student's submission folder; returns {"report", "gradescope", "text", "sources", "problems"}.

    The code between the exercise markers is taken from the submitted component files (or a
    zip of them) or, for the exercises they leave blank, from a submitted notebook's
    `%%exercise` cells, spliced into the blank component files, and graded with hidden checks.
    """
    with tempfile.TemporaryDirectory(prefix="coursekit-submission-") as scratch:
        folder = pathlib.Path(scratch)
        folder.chmod(0o755)
        with _AST_LOCK:
            bodies, origin, problems = edition.collect(submission)
            if not bodies:
                problems.append(
                    "no exercise code found: no component file or assignment notebook with written exercises"
                )
            problems += edition.assemble(bodies, folder)
        report = grader.grade(
            folder,
            exercises,
            hidden=True,
            hidden_seed=hidden_seed,
            all_or_nothing=all_or_nothing,
            user=user,
            limits=limits,
            workers=workers,
            check_seconds=check_seconds,
        )
    found = ", ".join(f"{name} ({where})" for name, where in origin.items()) or "none"
    text = "\n".join([f"Exercises found in your submission: {found}.", *problems, "", grader.format_report(report)])
    return {
        "report": report,
        "gradescope": grader.gradescope_results(report, output=text, extra_data={"sources": origin}),
        "text": text,
        "sources": origin,
        "problems": problems,
    }


def students_in(submissions):
    """The student folders of SUBMISSIONS, sorted by name (hidden entries and symlinks left out)."""
    submissions = pathlib.Path(submissions)
    if not submissions.is_dir():
        raise ValueError(f"no submissions folder at {submissions}")
    students = sorted(
        (p for p in submissions.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not students:
        raise ValueError(f"no student folders in {submissions}: expected SUBMISSIONS/<student>/ for each student")
    return students


def results_folder(out):
    """gradebook.csv -> gradebook/ beside it."""
    out = pathlib.Path(out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out must name a .csv file (the gradebook), not {str(out)!r}")
    return out.with_suffix("")


def _settings(folder, hidden_seed, exercises, all_or_nothing):
    """The run's settings: those of the first run in `folder` (resume), checked against the ones asked for."""
    path = folder / "settings.json"
    wanted = {"exercises": list(exercises), "all_or_nothing": bool(all_or_nothing)}
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            seed = int(saved["hidden_seed"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is damaged ({error}): remove the folder or choose another --out") from None
        differs = {key: saved.get(key) for key, value in wanted.items() if saved.get(key) != value}
        if hidden_seed is not None and hidden_seed != seed:
            differs["hidden_seed"] = seed
        if differs:
            raise ValueError(
                f"{folder} holds a class graded with other settings ({differs}): give those settings to resume, "
                "or another --out"
            )
        return saved
    settings = {"hidden_seed": secrets.randbits(32) if hidden_seed is None else int(hidden_seed), **wanted}
    write_json(path, settings)
    return settings


def _fault_point(name, count):
    """Tests: SIGKILL this process when COURSEKIT_GRADING_FAULT is "name:count"."""
    if os.environ.get(FAULT_VARIABLE) == f"{name}:{count}":
        os.kill(os.getpid(), signal.SIGKILL)


def _record_path(folder, student):
    return folder / "students" / f"{student}.json"


def _load_record(path):
    try:
        record = json.loads(path.read_text())
        return record if isinstance(record, dict) and record.get("status") == "graded" else None
    except (OSError, ValueError):
        return None


def _grade_student(path, folder, settings, options):
    """Grade one student and write their files; the result file last (it marks the student as graded)."""
    started = time.perf_counter()
    try:
        graded = grade_submission(
            path,
            hidden_seed=settings["hidden_seed"],
            all_or_nothing=settings["all_or_nothing"],
            exercises=settings["exercises"],
            **options,
        )
    except Exception as error:  # the grader's failure on this student: reported, retried on the next run
        return {
            "student": path.name,
            "status": "error",
            "problems": [f"the grader failed: {type(error).__name__}: {error}"],
        }
    record = {
        "student": path.name,
        "status": "graded",
        "seconds": round(time.perf_counter() - started, 1),
        **graded,
    }
    write_atomic(folder / "students" / f"{path.name}.txt", graded["text"] + "\n")
    write_json(folder / "students" / f"{path.name}.gradescope.json", graded["gradescope"])
    write_json(_record_path(folder, path.name), record)
    return record


def grade_all(
    submissions,
    out,
    *,
    jobs=None,
    hidden_seed=None,
    all_or_nothing=False,
    exercises=None,
    user=None,
    limits=None,
    workers=2,
    check_seconds=None,
    log=print,
):
    """Grade every student folder of `submissions`; writes the gradebook `out` and the summary; returns the rows.

    Args:
        jobs: Students graded at once (default: half the CPU cores, at least 1); each runs up to
            `workers` child processes (one per component file).
        hidden_seed: The class's grading seed (default: random on the first run, then the saved one).
        exercises: Names to grade (default: all).
        user, limits, check_seconds: as in `grader.grade`.
        log: Where progress lines go (None: nowhere).
    """
    log = log or (lambda *args: None)
    out = pathlib.Path(out)
    folder = results_folder(out)
    students = students_in(submissions)
    names = list(exercises or EXERCISES)
    unknown = [n for n in names if n not in EXERCISES]
    if unknown:
        raise ValueError(f"unknown exercise(s) {unknown}; valid: {', '.join(EXERCISES)}")
    (folder / "students").mkdir(parents=True, exist_ok=True)
    settings = _settings(folder, hidden_seed, names, all_or_nothing)
    records = {p.name: _load_record(_record_path(folder, p.name)) for p in students}
    todo = [p for p in students if records[p.name] is None]
    log(
        f"grade-all: {len(students)} students, {len(students) - len(todo)} already graded, {len(todo)} to grade "
        f"(hidden seed {settings['hidden_seed']})"
    )
    jobs = max(1, int(jobs or (os.cpu_count() or 2) // 2))
    options = {"user": user, "limits": limits, "workers": workers, "check_seconds": check_seconds}
    written = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_grade_student, p, folder, settings, options): p.name for p in todo}
        for future in concurrent.futures.as_completed(futures):
            record = future.result()
            records[futures[future]] = record
            if record["status"] == "graded":
                written += 1
                total = record["report"]["score"]
                log(f"  {record['student']}: {total:g}/{record['report']['max_score']:g} ({record['seconds']:g} s)")
                _fault_point("student_graded", written)
            else:
                log(f"  {record['student']}: not graded: {record['problems'][0]}")
    rows = gradebook_rows(records, names)
    write_gradebook(out, rows, names)
    write_summary(folder, records, names)
    log(f"wrote {out} and {folder}/summary.{{csv,md,png}}")
    return rows


# ----------------------------------------------------------------------------------------
# The gradebook and the class summary
# ----------------------------------------------------------------------------------------


def _exercise_points(record):
    return {r["exercise"]: r["score"] for r in record["report"]["exercises"]} if record.get("report") else {}


def _problems(record):
    """One line: what went wrong for this student (collection problems, limits broken, grader errors)."""
    found = list(record.get("problems", []))
    for result in record.get("report", {}).get("exercises", []):
        if result.get("limit"):
            found.append(f"{result['exercise']}: {result['limit']}")
    return "; ".join(found)


def gradebook_rows(records, names):
    """One row per student: student, points per exercise, total, max_total, problems."""
    rows = []
    for student, record in sorted(records.items()):
        record = record or {"problems": ["not graded"]}
        points = _exercise_points(record)
        rows.append(
            {
                "student": student,
                **{name: points.get(name) for name in names},
                "total": sum(points.values()) if points else None,
                "max_total": float(10 * len(names)),
                "problems": _problems(record),
            }
        )
    return rows


def _cell(value):
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    text = str(value) if not isinstance(value, float) else f"{value:g}"
    return f"'{text}" if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_gradebook(out, rows, names):
    columns = ["student", *names, "total", "max_total", "problems"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in columns])
    return write_atomic(out, buffer.getvalue())


def _written_failure(check):
    """A check failed on code the student wrote (not left blank, not stopped at a limit)."""
    return not check["passed"] and not check.get("limit") and check.get("message") != "not implemented yet"


def summarize(records, names):
    """Two tables of the graded students: per exercise [exercise, mean, full_marks, not_written,
    broke_limit, students]; and the checks failed most often by written code [exercise, check,
    failed, of (students who wrote the exercise), hint (the one given most often)]."""
    graded = [r for r in records.values() if r and r.get("status") == "graded"]
    exercises, written = [], collections.Counter()
    for name in names:
        results = [r for record in graded for r in record["report"]["exercises"] if r["exercise"] == name]
        blank = sum(all(c.get("message") == "not implemented yet" for c in r["checks"]) for r in results)
        written[name] = len(results) - blank
        exercises.append(
            {
                "exercise": name,
                "mean": round(sum(r["score"] for r in results) / len(results), 2) if results else None,
                "full_marks": sum(r["score"] == r["max_score"] for r in results),
                "not_written": blank,
                "broke_limit": sum(bool(r.get("limit")) for r in results),
                "students": len(results),
            }
        )
    failed, hints = collections.Counter(), {}
    for record in graded:
        for result in record["report"]["exercises"]:
            for check in filter(_written_failure, result["checks"]):
                key = (result["exercise"], check["check"])
                failed[key] += 1
                hints.setdefault(key, collections.Counter())[check.get("hint") or ""] += 1
    checks = [
        {
            "exercise": exercise,
            "check": check,
            "failed": count,
            "of": written[exercise],
            "hint": hints[(exercise, check)].most_common(1)[0][0],
        }
        for (exercise, check), count in sorted(failed.items(), key=lambda item: (-item[1], item[0]))[:MOST_FAILED]
    ]
    return exercises, checks


def _markdown(rows, columns):
    def text(value):
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = [f"| {' | '.join(columns)} |", f"|{'---|' * len(columns)}"]
    lines += [f"| {' | '.join(text(row[c]) for c in columns)} |" for row in rows]
    return "\n".join(lines)


def write_summary(folder, records, names):
    """summary.csv (both tables, a `table` column tells which), summary.md and summary.png."""
    from coursekit.plots import plot_panels

    exercises, checks = summarize(records, names)
    graded = sum(1 for r in records.values() if r and r.get("status") == "graded")
    buffer = io.StringIO()
    columns = ["table", "exercise", "mean", "full_marks", "not_written", "broke_limit", "students"]
    columns += ["check", "failed", "of", "hint"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in exercises:
        writer.writerow({"table": "exercise", **{k: _cell(v) for k, v in row.items()}})
    for row in checks:
        writer.writerow({"table": "most_failed", **{k: _cell(v) for k, v in row.items()}})
    write_atomic(folder / "summary.csv", buffer.getvalue())
    write_atomic(
        folder / "summary.md",
        f"# Class summary: {graded} of {len(records)} students graded\n\n## Points per exercise (of 10)\n\n"
        f"{_markdown(exercises, ['exercise', 'mean', 'full_marks', 'not_written', 'broke_limit', 'students'])}\n\n"
        "## The checks failed most often by written code: what to go over in class\n\n"
        "(`of`: the students who wrote the exercise; the hint is the one given most often.)\n\n"
        f"{_markdown(checks, ['exercise', 'check', 'failed', 'of', 'hint'])}\n",
    )
    panels = [
        {
            "title": f"mean points per exercise ({graded} students)",
            "bars": ([r["exercise"] for r in exercises], [r["mean"] or 0.0 for r in exercises]),
            "ylim": (0, 10),
        },
        {
            "title": "checks failed most often by written code (students)",
            "bars": ([f"{r['exercise']}: {r['check']}"[:40] for r in checks], [r["failed"] for r in checks]),
        },
    ]
    figure = folder / ".summary.png.tmp.png"
    plot_panels(panels, figure, ncols=2, panel_size=(7, 5))
    figure.replace(folder / "summary.png")  # whole or not at all
    return exercises, checks
