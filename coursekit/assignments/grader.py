"""Grade a student package: one child process per exercise, a score table, JSON for an LMS."""

import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys

from coursekit.assignments.checks import EXERCISES, RESULT_PREFIX
from coursekit.results import write_json

POINTS = 10
EXERCISE_SECONDS = 300


def grade_exercise(folder, name):
    """Run exercise `name` of the implementation in `folder` in a child process."""
    env = {**os.environ, "COURSEKIT_IMPLEMENTATION": str(pathlib.Path(folder).resolve()), "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "coursekit.assignments.checks", name],
            env=env,
            capture_output=True,
            text=True,
            timeout=EXERCISE_SECONDS,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if lines:
            checks = json.loads(lines[-1][len(RESULT_PREFIX) :])["checks"]
        else:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            checks = [
                {"check": "run", "passed": False, "error": None, "message": f"the checks crashed: {tail}", "hint": None}
            ]
    except subprocess.TimeoutExpired:
        checks = [
            {
                "check": "run",
                "passed": False,
                "error": None,
                "message": f"timed out after {EXERCISE_SECONDS} s (an endless loop?)",
                "hint": None,
            }
        ]
    passed = all(c["passed"] for c in checks)
    return {
        "exercise": name,
        "file": f"coursekit/{EXERCISES[name][0]}",
        "score": POINTS if passed else 0,
        "max_score": POINTS,
        "checks": checks,
    }


def grade(folder, exercises=None, workers=2):
    """Grade every exercise (or those named); returns the report dict."""
    folder = pathlib.Path(folder)
    if not (folder / "coursekit").is_dir():
        raise ValueError(f"no coursekit/ folder in {folder}: grade the folder that `make` wrote")
    names = list(exercises or EXERCISES)
    unknown = [n for n in names if n not in EXERCISES]
    if unknown:
        raise ValueError(f"unknown exercise(s) {unknown}; valid: {', '.join(EXERCISES)}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda n: grade_exercise(folder, n), names))
    return {
        "implementation": str(folder.resolve()),
        "score": sum(r["score"] for r in results),
        "max_score": sum(r["max_score"] for r in results),
        "exercises": results,
    }


def format_report(report):
    """The score table with the failing checks' messages and hints."""
    lines = [f"{'exercise':14s} {'score':>7s}  {'worst rel. error':>16s}  result"]
    for result in report["exercises"]:
        errors = [c["error"] for c in result["checks"] if c["error"] is not None]
        worst = f"{max(errors):.2e}" if errors else "-"
        failed = [c for c in result["checks"] if not c["passed"]]
        status = "all checks pass" if not failed else f"{failed[0]['check']}: {failed[0]['message']}"
        lines.append(
            f"{result['exercise']:14s} {result['score']:>3d}/{result['max_score']:<3d}  {worst:>16s}  {status}"
        )
        for check in failed:
            if check.get("hint"):
                lines.append(f"{'':14s} hint: {check['hint']}")
    lines.append(f"total: {report['score']}/{report['max_score']}")
    return "\n".join(lines)


def write_report(report, path):
    write_json(path, report)
