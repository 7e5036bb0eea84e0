"""Grade a student's components: probes run in child processes, the grader judges and scores.

The student's code runs only in a child process (`coursekit.assignments.harness`), one per
component file, optionally as another (unprivileged) user, always under limits
(`coursekit.assignments.sandbox`: memory, CPU seconds, file size, open files, processes, no
network where the machine allows, a scratch folder, an environment with nothing of the
grader's). The child reports raw measurements through a pipe; this process compares them with
`coursekit.reference` (see `exercises`) and decides every pass, fail and point. Time limits are
subprocess time limits: the child announces each probe, and a probe that runs past
`check_seconds` is killed with its process; the probes after it run in a fresh child. A crash,
`sys.exit`, an endless loop or a forged line costs the student that check, never the grading.

Scores: every check carries points (an exercise's checks add up to 10); `all_or_nothing=True`
gives an exercise its 10 points only when all its checks pass. An exercise whose code breaks a
limit (time, memory, CPU, file size, open files, processes) scores 0, with a message naming the
limit; its remaining checks are not run.
"""

import concurrent.futures
import dataclasses
import functools
import html
import json
import math
import os
import pathlib
import queue
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from coursekit.assignments import sandbox
from coursekit.assignments.exercises import EXERCISES, POINTS, CheckFailed, grading_checks
from coursekit.assignments.wire import decode_tree, encode_tree
from coursekit.results import write_json

KIT_ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPONENT_FILES = ("optimizers", "initializers", "layers", "regularizers")
STARTUP_SECONDS = 180  # importing Keras and the student's file
MAX_LINE = 16 * 2**20  # the longest line read from the measurement channel (a measurement is far smaller)
STDERR_TAIL = 64 * 2**10  # how much of the child's stderr is read back (the end of it)
DONE_SECONDS = 2  # how long the channel is read after the child said it is done


def check_seconds_default():
    """The time limit of one check (COURSEKIT_CHECK_SECONDS, default 60)."""
    return float(os.environ.get("COURSEKIT_CHECK_SECONDS", "60"))


@dataclasses.dataclass
class Measurement:
    """What the child reported for one probe (or why it reported nothing).

    `limit`: the message naming the limit the student's code broke on this probe ("used more
    than 2 GiB of memory", "timed out after 60 s"), or None.
    """

    ok: bool
    values: dict | None = None
    error: str | None = None
    not_implemented: bool = False
    limit: str | None = None


# ----------------------------------------------------------------------------------------
# Running the child processes
# ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _child_identity(user, limits):
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
    # Can that user run this Python at all (it may live in a folder only root can read)?
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="coursekit-precheck-"))
    try:
        os.chown(workdir, *identity)
        status, output, broken = sandbox.run(
            ["coursekit.assignments.wire"],
            limits,
            workdir=workdir,
            identity=identity,
            pythonpath=_kit_first_pythonpath(),
            timeout=120,
        )
    except OSError as error:
        status, output, broken = None, str(error), None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if status != 0:
        why = limits.message(broken) if broken in limits.VARIABLES else broken or _tail(output) or f"status {status}"
        raise ValueError(f"user {user!r} cannot run {sys.executable} with this kit ({why})")
    return identity


def _kit_first_pythonpath():
    """This kit's folder, then whatever PYTHONPATH already holds (packages provided through it)."""
    return os.pathsep.join([str(KIT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def _reader(stream, lines):
    try:
        while True:
            line = stream.readline(MAX_LINE)
            if not line:
                break
            lines.put(line)  # a bounded queue: a child that floods the channel waits for the grader
    except (OSError, ValueError):  # the grader closed the channel
        pass
    lines.put(None)


def _writer(stream, text):
    try:
        stream.write(text.encode())
        stream.close()
    except OSError:  # the child ended before it read its probes
        pass


def _stderr_tail(handle):
    handle.seek(0, os.SEEK_END)
    handle.seek(max(handle.tell() - STDERR_TAIL, 0))
    return _tail(handle.read())


def _run_child(folder, module, checks, check_seconds, identity, limits):
    """One child process over `checks`; returns ({id: Measurement}, finished)."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="coursekit-grade-"))
    try:
        probes = json.dumps([{"id": c.id, "kind": c.kind, "args": encode_tree(c.args)} for c in checks])
        if identity:
            os.chown(workdir, *identity)
        read_fd, write_fd = os.pipe()
        with open(workdir / "stderr.txt", "w+", errors="replace") as stderr:
            try:
                child = sandbox.Child(
                    ["coursekit.assignments.harness", str(write_fd), str(folder), module],
                    limits,
                    workdir=workdir,
                    identity=identity,
                    pythonpath=_kit_first_pythonpath(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    pass_fds=(write_fd,),
                )
            finally:
                os.close(write_fd)
            with child, os.fdopen(read_fd, "r", errors="replace") as stream:
                # The probes go to the child only now that it is in its cgroups: no code of the
                # student's runs before the harness has read them.
                threading.Thread(target=_writer, args=(child.process.stdin, probes), daemon=True).start()
                lines = queue.Queue(maxsize=4)
                reader = threading.Thread(target=_reader, args=(stream, lines), daemon=True)
                reader.start()
                measured, failures, finished, reported = _follow(child, lines, checks, check_seconds)
                child.kill()
                give_up = time.monotonic() + 5
                while reader.is_alive() and time.monotonic() < give_up:  # let the reader see the channel's end
                    try:
                        lines.get(timeout=0.1)
                    except queue.Empty:
                        pass
            tail = _stderr_tail(stderr)
        broken = child.broken()
        broken = None if broken in reported else broken
        for check_id, (message, limit) in failures.items():
            if broken:  # the child was ended at (or refused beyond) a limit: the check that ran then broke it
                message = limit = limits.message(broken)
            failures[check_id] = Measurement(False, error=f"{message}{f': {tail}' if tail else ''}", limit=limit)
        if broken and not failures:  # the child survived a refused fork or a killed grandchild
            last = next((i for i in reversed([c.id for c in checks]) if i in measured), None)
            if last is not None:
                failures[last] = Measurement(False, error=limits.message(broken), limit=limits.message(broken))
        measured.update(failures)
        return measured, finished
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _follow(child, lines, checks, check_seconds):
    """Read the child's events until it ends or a deadline passes.

    Returns ({id: Measurement}, {id: (message, limit or None)}, finished, {limits already reported}).
    """
    wanted = {c.id for c in checks}
    measured, failures, tampered, reported = {}, {}, set(), set()
    loaded, current, done = False, None, False
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            child.kill()
            if done:
                break
            if not loaded:
                message = f"timed out after {STARTUP_SECONDS} s while loading your code"
                return measured, dict.fromkeys(wanted - set(measured), (message, message)), True, reported
            if current is not None:
                message = f"timed out after {check_seconds:g} s"
                failures[current] = (f"{message} (an endless loop?)", message)
            return measured, failures, False, reported
        if line is None:
            break
        try:
            event = json.loads(line)
            kind = event["event"]
        except (ValueError, KeyError, TypeError, RecursionError):
            continue  # not the harness's line: ignored
        if done and kind != "result":
            continue  # after "done": only a second result matters
        if kind == "loaded":
            loaded = True
            deadline = time.monotonic() + check_seconds
        elif kind == "start" and event.get("id") in wanted:
            current = event["id"]
            deadline = time.monotonic() + check_seconds
        elif kind == "result" and event.get("id") in wanted:
            check_id = event["id"]
            broken = child.broken()
            measurement = _measurement(event, child.limits, None if broken in reported else broken)
            if check_id in measured:
                tampered.add(check_id)
                measurement.limit = measurement.limit or measured[check_id].limit
            measured[check_id] = measurement
            reported.add(broken)
            current = None
            if measurement.limit:  # the rest of this exercise is not run: a fresh child for the others
                return measured, failures, False, reported
        elif kind == "done":
            # The rest of the channel is still read (a second result is tampering), but only for a
            # moment: processes the student's code forked may hold it open.
            done, deadline = True, time.monotonic() + DONE_SECONDS
    try:
        child.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
    for check_id in tampered:
        limit = measured.pop(check_id).limit  # a fork of the harness reports twice: the limit it broke stays
        failures[check_id] = ("two results for one check: the measurement channel was written to by other code", limit)
    status = f"exit status {child.process.returncode}"
    if not loaded:
        message = f"the process ended while loading your code ({status})"
        return measured, dict.fromkeys(wanted - set(measured), (message, None)), True, reported
    if current is not None:
        failures[current] = (f"the process ended during this check ({status}; sys.exit or a crash in your code?)", None)
        return measured, failures, False, reported
    if not done:
        for check_id in wanted - set(measured) - set(failures):
            failures[check_id] = (f"the process ended before this check ran ({status})", None)
    return measured, failures, True, reported


def _measurement(event, limits, broken):
    """The Measurement of a result event; `broken`: a limit the kernel enforced since the last one (or None)."""
    if event.get("ok") is True and not broken:
        try:
            values = decode_tree(event["values"])
            if not isinstance(values, dict) or not all(isinstance(v, np.ndarray) for v in values.values()):
                raise ValueError("values must be arrays")
        except (KeyError, ValueError, TypeError, RecursionError) as error:
            return Measurement(False, error=f"malformed measurement ({error})")
        return Measurement(True, values=values)
    error = str(event.get("error"))[:500]
    broken = broken or sandbox.limit_named_in(error)
    if broken:
        return Measurement(False, error=f"{limits.message(broken)} ({error})", limit=limits.message(broken))
    return Measurement(False, error=error, not_implemented=event.get("not_implemented") is True)


def _tail(text, lines=3):
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-600:]


def measure(folder, module, checks, *, check_seconds=None, identity=None, limits=None):
    """Run `checks` (all of one component file) on the student's code; {check id: Measurement}.

    A check whose probe timed out or crashed its process gets a failed Measurement with the
    reason; the checks after it run in a fresh child. Once a check breaks a limit, the other
    checks of its exercise are not run (the exercise scores 0).
    """
    check_seconds = check_seconds or check_seconds_default()
    limits = limits or sandbox.Limits.from_env()
    results, remaining = {}, list(checks)
    while remaining:
        measured, finished = _run_child(folder, module, remaining, check_seconds, identity, limits)
        if not finished and not measured:  # stuck between checks: the next one fails
            message = f"timed out after {check_seconds:g} s"
            measured = {remaining[0].id: Measurement(False, error=message, limit=message)}
        results.update(measured)
        broken = {c.exercise: results[c.id].limit for c in checks if c.id in results and results[c.id].limit}
        for check in remaining:
            if check.id not in results and check.exercise in broken:
                results[check.id] = Measurement(
                    False,
                    error=f"not run: this exercise broke a limit ({broken[check.exercise]})",
                    limit=broken[check.exercise],
                )
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
    if measurement.limit:
        return {
            **verdict,
            "passed": False,
            "error": None,
            "message": measurement.error,
            "hint": "code that breaks a limit scores 0 on its exercise: look for a loop that does not end, "
            "or memory, files or processes that keep growing",
            "limit": measurement.limit,
        }
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


def _all_blank(folder, module, names):
    """Does coursekit/<module>.py leave every exercise of `names` in it as the blank TODO (so each one
    would raise NotImplementedError)? Then its checks need no child process."""
    from coursekit.assignments import blocks
    from coursekit.assignments.edition import is_blank

    try:
        found = blocks((folder / "coursekit" / f"{module}.py").read_text())
    except (OSError, UnicodeError, ValueError):
        return False
    wanted = [name for name in names if EXERCISES[name].module == module]
    return all(name in found and is_blank(found[name]) for name in wanted)


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
    limits=None,
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
        limits: `sandbox.Limits` of every child (default: `Limits.from_env()`).
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
    limits = limits or sandbox.Limits.from_env()
    identity = _child_identity(user, limits)
    if hidden and hidden_seed is None:
        hidden_seed = secrets.randbits(32)
    checks = {name: grading_checks(name, hidden_seed if hidden else None) for name in names}
    by_module = {}
    for name in names:
        by_module.setdefault(EXERCISES[name].module, []).extend(checks[name])
    measurements = {}
    for module in [m for m in by_module if _all_blank(folder, m, names)]:  # nothing written: no child needed
        measurements.update(
            {c.id: Measurement(False, error="not implemented", not_implemented=True) for c in by_module.pop(module)}
        )
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        futures = {
            module: pool.submit(
                measure, folder, module, group, check_seconds=check_seconds, identity=identity, limits=limits
            )
            for module, group in by_module.items()
        }
        measurements.update({check_id: m for future in futures.values() for check_id, m in future.result().items()})
    results = []
    for name in names:
        verdicts = [judge(check, measurements[check.id]) for check in checks[name]]
        max_score = float(sum(v["max_points"] for v in verdicts))
        score = float(sum(v["points"] for v in verdicts))
        limit = next((v["limit"] for v in verdicts if v.get("limit")), None)
        if limit or (all_or_nothing and not all(v["passed"] for v in verdicts)):
            score = 0.0
            for verdict in verdicts:
                verdict["points"] = 0.0
        results.append(
            {
                "exercise": name,
                "file": f"coursekit/{EXERCISES[name].module}.py",
                "score": score,
                "max_score": max_score,
                "limit": limit,
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
        "sandbox": sandbox.mechanisms(limits, identity),
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
        if result.get("limit"):
            status = f"0 points: your code {result['limit']}"
        lines.append(
            f"{result['exercise']:14s} {_points(result['score']):>3s}/{_points(result['max_score']):<3s}  {status}"
        )
        for check in failed:
            lines.append(f"{'':14s} - {check['check']}: {check['message']}")
            if check.get("hint"):
                lines.append(f"{'':16s} hint: {check['hint']}")
    lines.append(f"total: {_points(report['score'])}/{_points(report['max_score'])}")
    if any(r.get("limit") for r in report["exercises"]) and report.get("sandbox"):
        lines.append(f"the grader's limits per process: {report['sandbox']['limits']}")
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
