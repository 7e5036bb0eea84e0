"""python -m coursekit.assignments make | grade | grade-all | autograder | autograde (see --help)."""

import argparse
import pathlib
import sys

from coursekit.cli import OneLineParser, non_negative_int, positive_int


def _size(text):
    from coursekit.assignments.sandbox import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


def _grading_options(parser, *, user_default=None):
    """The options every grading command shares: the hidden checks, the child's user and limits."""
    parser.add_argument("--hidden-seed", type=non_negative_int, help="seed of the hidden checks (default: random)")
    parser.add_argument("--all-or-nothing", action="store_true", help="an exercise scores only if all its checks pass")
    parser.add_argument("--user", default=user_default, help="run the student's code as this user (needs root)")
    limits = parser.add_argument_group(
        "limits on every child process (defaults: the COURSEKIT_LIMIT_* variables, else the values shown)"
    )
    limits.add_argument("--memory", type=_size, help="memory, e.g. 2G (default 2G)")
    limits.add_argument("--cpu-seconds", type=positive_int, help="CPU seconds per process (default 600)")
    limits.add_argument("--file-size", type=_size, help="largest file written, e.g. 64M (default 64M)")
    limits.add_argument("--open-files", type=positive_int, help="open files at once (default 256)")
    limits.add_argument("--processes", type=positive_int, help="processes and threads together (default 512)")
    limits.add_argument(
        "--check-seconds", type=_seconds, help="time limit of one check (default COURSEKIT_CHECK_SECONDS or 60)"
    )


def parse_args(argv):
    parser = OneLineParser(
        prog="python -m coursekit.assignments", description="Lab assignments: make, grade, Gradescope."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write the student edition of the kit into DIR (no solutions)")
    make.add_argument("folder")
    make.add_argument("--source", help="git URL students clone the edition from (default: [tool.coursekit] source)")

    grade = commands.add_parser("grade", help="grade the components in DIR/coursekit/")
    grade.add_argument("folder")
    grade.add_argument("--exercise", action="append", help="grade only this exercise (repeatable)")
    grade.add_argument("--json", help="also write the report as JSON to this file")
    grade.add_argument("--gradescope", help="also write Gradescope's results.json to this file")
    grade.add_argument("--public-only", action="store_true", help="only the public checks (what students run)")
    _grading_options(grade)

    grade_all = commands.add_parser(
        "grade-all", help="grade every SUBMISSIONS/<student>/ into a gradebook (resumable, in parallel)"
    )
    grade_all.add_argument("submissions")
    grade_all.add_argument("--out", required=True, help="the gradebook, a .csv file; reports go to a folder beside it")
    grade_all.add_argument("--jobs", type=positive_int, help="students graded at once (default: half the cores)")
    grade_all.add_argument("--exercise", action="append", help="grade only this exercise (repeatable)")
    _grading_options(grade_all)

    build = commands.add_parser("autograder", help="build Gradescope's autograder zip")
    build.add_argument("zip")
    build.add_argument("--source", help="git URL of the student edition (default: [tool.coursekit] source)")

    autograde = commands.add_parser("autograde", help="grade a Gradescope submission folder (run_autograder)")
    autograde.add_argument("submission")
    autograde.add_argument("--gradescope", required=True, help="where to write results.json")
    _grading_options(autograde, user_default="")
    return parser.parse_args(argv)


def _limits(args):
    from coursekit.assignments.sandbox import Limits

    return Limits.from_env(
        memory=args.memory,
        cpu_seconds=args.cpu_seconds,
        file_size=args.file_size,
        open_files=args.open_files,
        tasks=args.processes,
    )


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from coursekit.assignments import edition, grader

    try:
        if args.command == "make":
            names = edition.make_student_edition(args.folder, args.source)
            print(f"wrote the student edition to {args.folder} ({len(names)} exercises: {', '.join(names)})")
            return 0
        if args.command == "autograder":
            path = edition.build_autograder(args.zip, args.source)
            print(f"wrote {path}: upload it as the assignment's autograder on Gradescope")
            return 0
        if args.command == "grade":
            report = grader.grade(
                args.folder,
                args.exercise,
                hidden=not args.public_only,
                hidden_seed=args.hidden_seed,
                all_or_nothing=args.all_or_nothing,
                user=args.user,
                limits=_limits(args),
                check_seconds=args.check_seconds,
            )
            print(grader.format_report(report))
            if args.json:
                grader.write_report(report, args.json)
            if args.gradescope:
                grader.write_report(grader.gradescope_results(report), args.gradescope)
            return 0
        if args.command == "grade-all":
            return grade_all(args)
        return autograde(args)
    except ValueError as error:
        print(f"{args.command}: error: {error}", file=sys.stderr)
        return 2


def grade_all(args):
    from coursekit.assignments import gradebook
    from coursekit.assignments.sandbox import mechanisms

    limits = _limits(args)
    gradebook.results_folder(args.out)  # a bad --out fails before anything is graded
    held = mechanisms(limits)
    print(f"limits per child: {limits.describe()}; memory by {held['memory']}, processes by {held['tasks']}")
    print(f"network: {held['network']}" + (f"; {held['note']}" if held["note"] and not args.user else ""))
    rows = gradebook.grade_all(
        args.submissions,
        args.out,
        jobs=args.jobs,
        hidden_seed=args.hidden_seed,
        all_or_nothing=args.all_or_nothing,
        exercises=args.exercise,
        user=args.user,
        limits=limits,
        check_seconds=args.check_seconds,
    )
    graded = [r for r in rows if r["total"] is not None]
    print(f"{len(graded)} of {len(rows)} students graded")
    return 0 if len(graded) == len(rows) else 1


def autograde(args):
    """Collect the submission's exercise code, splice it into the blank kit, grade, write results.json."""
    from coursekit.assignments import grader
    from coursekit.assignments.gradebook import grade_submission

    graded = grade_submission(
        pathlib.Path(args.submission),
        hidden_seed=args.hidden_seed,
        all_or_nothing=args.all_or_nothing,
        user=args.user or None,
        limits=_limits(args),
        check_seconds=args.check_seconds,
    )
    grader.write_report(graded["gradescope"], args.gradescope)
    print(grader.format_report(graded["report"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
