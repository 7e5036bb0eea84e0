"""Grade a student's components: probes run in child processes, the grader judges and scores.

The student's code runs only in a child process (`coursekit.assignments.harness`), one per
component file, optionally as another (unprivileged) user. The child reports raw measurements
through a pipe; this process compares them with `coursekit.reference` (see `exercises`) and
decides every pass, fail and point. Time limits are subprocess time limits: the child announces
each probe, and a probe that runs past `check_seconds` is killed with its process; the probes
after it run in a fresh child. A crash, `sys.exit`, an endless loop or a forged line costs the
student that check, never the grading.

Scores: every check carries points (an exercise's checks add up to 10); `all_or_nothing=True`
gives an exercise its 10 points only when all its checks pass.
"""

import concurrent.futures
import dataclasses
import html
import json
import math
import os
import pathlib
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from coursekit.assignments.exercises import EXERCISES, POINTS, CheckFailed, grading_checks
from coursekit.assignments.wire import decode_tree, encode_tree
from coursekit.results import write_json

KIT_ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPONENT_FILES = ("optimizers", "initializers", "layers", "regularizers")
STARTUP_SECONDS = 180  # importing Keras and the student's file
MAX_LINE = 64 * 2**20


def check_seconds_default():
    """The time limit of one check (COURSEKIT_CHECK_SECONDS, default 60)."""
    return float(os.environ.get("COURSEKIT_CHECK_SECONDS", "60"))


@dataclasses.dataclass
class Measurement:
    """What the child reported for one probe (or why it reported nothing)."""

    ok: bool
    values: dict | None = None
    error: str | None = None
    not_implemented: bool = False


# ----------------------------------------------------------------------------------------
# Running the child processes
# ----------------------------------------------------------------------------------------


def _child_identity(user):
    """(uid, gid) to run the student's code as, or None to run as this process's user."""
    if not user:
        return None
    import pwd

    try:
        record = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no user {user!r} on this machine to run the student's code as") from None
    if os.geteuid() != 0:
        raise ValueError(f"running the student's code as {user!r} needs root; this grader runs as uid {os.geteuid()}")
    identity = record.pw_uid, record.pw_gid
    try:  # can that user run this Python at all (it may live in a folder only root can read)?
        subprocess.run(
            [sys.executable, "-c", "import coursekit.assignments.wire"],
            user=identity[0],
            group=identity[1],
            extra_groups=[],
            env={**os.environ, "PYTHONPATH": _kit_first_pythonpath(), "HOME": "/tmp"},
            cwd="/",
            capture_output=True,
            timeout=120,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise ValueError(f"user {user!r} cannot run {sys.executable} with this kit ({error})") from None
    return identity


def _kit_first_pythonpath():
    """This kit's folder, then whatever PYTHONPATH already holds (packages provided through it)."""
    return os.pathsep.join([str(KIT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def _reader(stream, lines):
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            break
        lines.put(line)
    lines.put(None)


def _run_child(folder, module, checks, check_seconds, identity):
    """One child process over `checks`; returns ({id: Measurement}, {id: failure message}, finished)."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="coursekit-grade-"))
    try:
        probes = [{"id": c.id, "kind": c.kind, "args": encode_tree(c.args)} for c in checks]
        (workdir / "probes.json").write_text(json.dumps(probes))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COURSEKIT_IMPLEMENTATION")},
            "PYTHONPATH": _kit_first_pythonpath(),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
        }
        if identity:
            os.chown(workdir, *identity)
        read_fd, write_fd = os.pipe()
        with open(workdir / "probes.json") as stdin, open(workdir / "stderr.txt", "w+") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", "coursekit.assignments.harness", str(write_fd), str(folder), module],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(write_fd,),
                cwd=workdir,
                env=env,
                start_new_session=True,
                **({"user": identity[0], "group": identity[1], "extra_groups": []} if identity else {}),
            )
            os.close(write_fd)
            lines = queue.Queue()
            with os.fdopen(read_fd, "r", errors="replace") as stream:
                reader = threading.Thread(target=_reader, args=(stream, lines), daemon=True)
                reader.start()
                measured, failures, finished = _follow(child, lines, checks, check_seconds)
                _kill(child)
                reader.join(timeout=5)
            stderr.seek(0)
            tail = _tail(stderr.read())
        for check_id, message in failures.items():
            failures[check_id] = f"{message}{f': {tail}' if tail else ''}"
        return measured, failures, finished
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _follow(child, lines, checks, check_seconds):
    """Read the child's events until it ends or a deadline passes."""
    wanted = {c.id for c in checks}
    measured, failures, tampered = {}, {}, set()
    loaded, current, done = False, None, False
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            if not loaded:
                return measured, dict.fromkeys(wanted - set(measured), "timed out while loading your code"), True
            if current is not None:
                failures[current] = f"timed out after {check_seconds:g} s (an endless loop?)"
            return measured, failures, False
        if line is None:
            break
        try:
            event = json.loads(line)
            kind = event["event"]
        except (ValueError, KeyError, TypeError):
            continue  # not the harness's line: ignored
        if kind == "loaded":
            loaded = True
            deadline = time.monotonic() + check_seconds
        elif kind == "start" and event.get("id") in wanted:
            current = event["id"]
            deadline = time.monotonic() + check_seconds
        elif kind == "result" and event.get("id") in wanted:
            check_id = event["id"]
            if check_id in measured:
                tampered.add(check_id)
            measured[check_id] = _measurement(event)
            current = None
        elif kind == "done":
            done = True
    child.wait()
    for check_id in tampered:
        measured.pop(check_id, None)
        failures[check_id] = "two results for one check: the measurement channel was written to by other code"
    status = f"exit status {child.returncode}"
    if not loaded:
        return (
            measured,
            dict.fromkeys(wanted - set(measured), f"the process ended while loading your code ({status})"),
            True,
        )
    if current is not None:
        failures[current] = f"the process ended during this check ({status}; sys.exit or a crash in your code?)"
        return measured, failures, False
    if not done:
        for check_id in wanted - set(measured) - set(failures):
            failures[check_id] = f"the process ended before this check ran ({status})"
    return measured, failures, True


def _measurement(event):
    if event.get("ok") is True:
        try:
            values = decode_tree(event["values"])
            if not isinstance(values, dict) or not all(isinstance(v, np.ndarray) for v in values.values()):
                raise ValueError("values must be arrays")
        except (KeyError, ValueError) as error:
            return Measurement(False, error=f"malformed measurement ({error})")
        return Measurement(True, values=values)
    return Measurement(False, error=str(event.get("error"))[:500], not_implemented=event.get("not_implemented") is True)


def _kill(child):
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            child.kill()
        child.wait()


def _tail(text, lines=3):
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-600:]


def measure(folder, module, checks, *, check_seconds=None, identity=None):
    """Run `checks` (all of one component file) on the student's code; {check id: Measurement}.

    A check whose probe timed out or crashed its process gets a failed Measurement with the
    reason; the checks after it run in a fresh child.
    """
    check_seconds = check_seconds or check_seconds_default()
    results, remaining = {}, list(checks)
    while remaining:
        measured, failures, finished = _run_child(folder, module, remaining, check_seconds, identity)
        if not finished and not measured and not failures:  # stuck between checks: the next one fails
            failures = {remaining[0].id: f"timed out after {check_seconds:g} s"}
        results.update(measured)
        results.update({check_id: Measurement(False, error=message) for check_id, message in failures.items()})
        if finished:
            break
        remaining = [c for c in remaining if c.id not in results]
    for check in checks:
        results.setdefault(check.id, Measurement(False, error="the check produced no result"))
    return results


# ----------------------------------------------------------------------------------------
# Judging and scoring
# ----------------------------------------------------------------------------------------


def _finite(value):
    return value if isinstance(value, float) and math.isfinite(value) else None


def judge(check, measurement):
    """The grader's verdict on one check: a JSON-safe dict."""
    verdict = {"check": check.name, "hidden": check.hidden, "points": 0.0, "max_points": float(check.points)}
    if not measurement.ok:
        if measurement.not_implemented:
            return {
                **verdict,
                "passed": False,
                "error": None,
                "message": "not implemented yet",
                "hint": "fill in the TODO block",
            }
        return {
            **verdict,
            "passed": False,
            "error": None,
            "message": measurement.error,
            "hint": "read the error message and the TODO",
        }
    try:
        error = check.judge(measurement.values)
    except CheckFailed as failure:
        error = None if failure.error is None else _finite(float(failure.error))
        return {**verdict, "passed": False, "error": error, "message": str(failure), "hint": failure.hint}
    except Exception as problem:  # a measurement the judge cannot read (missing or odd values)
        return {
            **verdict,
            "passed": False,
            "error": None,
            "message": f"the measurement could not be judged ({type(problem).__name__}: {problem})",
            "hint": None,
        }
    error = None if error is None else _finite(float(error))
    return {**verdict, "points": float(check.points), "passed": True, "error": error, "message": "ok", "hint": None}


def grade(
    folder,
    exercises=None,
    *,
    hidden=True,
    hidden_seed=None,
    all_or_nothing=False,
    workers=2,
    user=None,
    check_seconds=None,
):
    """Grade the components in `folder`/coursekit/; returns the report (a JSON-safe dict).

    Args:
        folder: A folder holding coursekit/{optimizers,initializers,layers,regularizers}.py.
        exercises: Names to grade (default: all of them).
        hidden: Add the hidden checks (drawn from `hidden_seed`, random if None).
        all_or_nothing: An exercise scores its points only when all its checks pass.
        workers: Child processes at once (one per component file).
        user: Run the student's code as this user (needs root), e.g. "student" on Gradescope.
        check_seconds: Time limit of one check (default COURSEKIT_CHECK_SECONDS or 60).
    """
    folder = pathlib.Path(folder).resolve()
    if not (folder / "coursekit").is_dir():
        raise ValueError(f"no coursekit/ folder in {folder}: grade the folder that holds the component files")
    missing = [f"coursekit/{m}.py" for m in COMPONENT_FILES if not (folder / "coursekit" / f"{m}.py").is_file()]
    if missing:
        raise ValueError(f"{folder} lacks {', '.join(missing)}")
    names = list(exercises or EXERCISES)
    unknown = [n for n in names if n not in EXERCISES]
    if unknown:
        raise ValueError(f"unknown exercise(s) {unknown}; valid: {', '.join(EXERCISES)}")
    identity = _child_identity(user)
    if hidden and hidden_seed is None:
        hidden_seed = secrets.randbits(32)
    checks = {name: grading_checks(name, hidden_seed if hidden else None) for name in names}
    by_module = {}
    for name in names:
        by_module.setdefault(EXERCISES[name].module, []).extend(checks[name])
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        futures = {
            module: pool.submit(measure, folder, module, group, check_seconds=check_seconds, identity=identity)
            for module, group in by_module.items()
        }
        measurements = {check_id: m for future in futures.values() for check_id, m in future.result().items()}
    results = []
    for name in names:
        verdicts = [judge(check, measurements[check.id]) for check in checks[name]]
        max_score = float(sum(v["max_points"] for v in verdicts))
        score = float(sum(v["points"] for v in verdicts))
        if all_or_nothing and not all(v["passed"] for v in verdicts):
            score = 0.0
            for verdict in verdicts:
                verdict["points"] = 0.0
        results.append(
            {
                "exercise": name,
                "file": f"coursekit/{EXERCISES[name].module}.py",
                "score": score,
                "max_score": max_score,
                "checks": verdicts,
            }
        )
    return {
        "implementation": str(folder),
        "score": float(sum(r["score"] for r in results)),
        "max_score": float(sum(r["max_score"] for r in results)),
        "hidden_checks": bool(hidden),
        "hidden_seed": hidden_seed,
        "all_or_nothing": bool(all_or_nothing),
        "exercises": results,
    }


# ----------------------------------------------------------------------------------------
# Reports: text, HTML (notebooks), JSON, Gradescope
# ----------------------------------------------------------------------------------------


def _points(value):
    return f"{value:g}"


def format_report(report):
    """The score table, with every failing check's message and hint."""
    lines = [f"{'exercise':14s} {'score':>7s}  result"]
    for result in report["exercises"]:
        failed = [c for c in result["checks"] if not c["passed"]]
        status = (
            f"all {len(result['checks'])} checks pass"
            if not failed
            else f"{len(failed)} of {len(result['checks'])} checks fail"
        )
        lines.append(
            f"{result['exercise']:14s} {_points(result['score']):>3s}/{_points(result['max_score']):<3s}  {status}"
        )
        for check in failed:
            lines.append(f"{'':14s} - {check['check']}: {check['message']}")
            if check.get("hint"):
                lines.append(f"{'':16s} hint: {check['hint']}")
    lines.append(f"total: {_points(report['score'])}/{_points(report['max_score'])}")
    return "\n".join(lines)


def html_report(report):
    """The same table as HTML (shown by `check()` in a notebook)."""
    rows = []
    for result in report["exercises"]:
        for check in result["checks"]:
            mark = "&#10004;" if check["passed"] else "&#10008;"
            color = "#1a7f37" if check["passed"] else "#cf222e"
            detail = html.escape(check["message"] or "")
            if check.get("hint"):
                detail += f"<br><i>hint: {html.escape(check['hint'])}</i>"
            rows.append(
                f"<tr><td>{html.escape(result['exercise'])}</td><td>{html.escape(check['check'])}</td>"
                f"<td style='color:{color}'>{mark}</td><td>{_points(check['points'])}/{_points(check['max_points'])}</td>"
                f"<td style='text-align:left'>{detail}</td></tr>"
            )
    return (
        "<table><thead><tr><th>exercise</th><th>check</th><th></th><th>points</th><th>details</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<p><b>total: {_points(report['score'])}/{_points(report['max_score'])}</b></p>"
    )


def write_report(report, path):
    """The report as strict JSON (no NaN), written whole."""
    write_json(path, report)


def gradescope_results(report, *, output="", extra_data=None):
    """The report in Gradescope's results.json format: one test per check."""
    tests = []
    for result in report["exercises"]:
        for check in result["checks"]:
            text = check["message"] or ""
            if check.get("hint"):
                text += f"\nhint: {check['hint']}"
            tests.append(
                {
                    "name": f"{result['exercise']}: {check['check']}",
                    "score": check["points"],
                    "max_score": check["max_points"],
                    "output": text,
                    "visibility": "after_due_date" if check["hidden"] else "visible",
                }
            )
    return {
        "score": report["score"],
        "output": output or f"total: {_points(report['score'])}/{_points(report['max_score'])}",
        "tests": tests,
        "extra_data": {"hidden_seed": report["hidden_seed"], **(extra_data or {})},
    }


class CheckReport(dict):
    """A grading report that shows itself as a table: HTML in a notebook, text elsewhere."""

    def _repr_html_(self):
        return html_report(self)

    def __str__(self):
        return format_report(self)

    __repr__ = __str__


def check(*exercises, folder=None):
    """Run the public checks of `exercises` (default: all) on this kit's components; a table to show.

    In a notebook, end a cell with `check("momentum")`; the student's code runs in a child
    process with a time limit, so an endless loop or a crash never stops the notebook.
    """
    folder = pathlib.Path(folder) if folder else KIT_ROOT
    return CheckReport(grade(folder, list(exercises) or None, hidden=False))


def check_all(folder=None):
    """Every exercise's public checks (see `check`)."""
    return check(folder=folder)


def points(report):
    """{exercise: score} of a report."""
    return {r["exercise"]: r["score"] for r in report["exercises"]}


__all__ = [
    "POINTS",
    "check",
    "check_all",
    "format_report",
    "grade",
    "gradescope_results",
    "html_report",
    "write_report",
]
