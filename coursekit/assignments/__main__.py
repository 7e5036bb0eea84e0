"""python -m coursekit.assignments make | grade | autograder | autograde (see --help)."""

import pathlib
import sys
import tempfile

from coursekit.cli import OneLineParser, non_negative_int


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
    grade.add_argument("--hidden-seed", type=non_negative_int, help="seed of the hidden checks (default: random)")
    grade.add_argument("--all-or-nothing", action="store_true", help="an exercise scores only if all its checks pass")
    grade.add_argument("--user", help="run the student's code as this user (needs root)")

    build = commands.add_parser("autograder", help="build Gradescope's autograder zip")
    build.add_argument("zip")
    build.add_argument("--source", help="git URL of the student edition (default: [tool.coursekit] source)")

    autograde = commands.add_parser("autograde", help="grade a Gradescope submission folder (run_autograder)")
    autograde.add_argument("submission")
    autograde.add_argument("--gradescope", required=True, help="where to write results.json")
    autograde.add_argument("--user", default="", help="run the student's code as this user (needs root)")
    autograde.add_argument("--hidden-seed", type=non_negative_int)
    autograde.add_argument("--all-or-nothing", action="store_true")
    return parser.parse_args(argv)


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
            )
            print(grader.format_report(report))
            if args.json:
                grader.write_report(report, args.json)
            if args.gradescope:
                grader.write_report(grader.gradescope_results(report), args.gradescope)
            return 0
        return autograde(args)
    except ValueError as error:
        print(f"{args.command}: error: {error}", file=sys.stderr)
        return 2


def autograde(args):
    """Collect the submission's exercise code, splice it into the blank kit, grade, write results.json."""
    from coursekit.assignments import edition, grader

    bodies, origin, problems = edition.collect(args.submission)
    with tempfile.TemporaryDirectory(prefix="coursekit-submission-") as scratch:
        folder = pathlib.Path(scratch)
        folder.chmod(0o755)
        problems += edition.assemble(bodies, folder)
        report = grader.grade(
            folder,
            hidden=True,
            hidden_seed=args.hidden_seed,
            all_or_nothing=args.all_or_nothing,
            user=args.user or None,
        )
    found = ", ".join(f"{name} ({where})" for name, where in origin.items()) or "none"
    lines = [f"Exercises found in your submission: {found}.", *problems, "", grader.format_report(report)]
    results = grader.gradescope_results(report, output="\n".join(lines), extra_data={"sources": origin})
    grader.write_report(results, args.gradescope)
    print(grader.format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
