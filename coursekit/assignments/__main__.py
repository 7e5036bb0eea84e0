"""python -m coursekit.assignments make DIR | grade DIR [--json FILE] [--exercise NAME ...]"""

import argparse
import sys

from coursekit.assignments import make_student_package


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m coursekit.assignments")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write the student files under DIR/coursekit/")
    make.add_argument("folder")
    grade = commands.add_parser("grade", help="grade the student files under DIR/coursekit/")
    grade.add_argument("folder")
    grade.add_argument("--json", help="also write the report as JSON to this file")
    grade.add_argument("--exercise", action="append", help="grade only this exercise (repeatable)")
    args = parser.parse_args(argv)

    if args.command == "make":
        names = make_student_package(args.folder)
        print(f"wrote {args.folder}/coursekit/ with {len(names)} exercises: {', '.join(names)}")
        return 0
    from coursekit.assignments.grader import format_report, write_report
    from coursekit.assignments.grader import grade as run_grade

    try:
        report = run_grade(args.folder, args.exercise)
    except ValueError as error:
        print(f"grade: error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
