"""`python -m labs` lists the labs; `python -m labs NAME|all [options]` runs one or all of them."""

import sys
import time

from labs import NAMES, title


def print_list():
    print(
        "Labs (python -m labs NAME|all [--preset smoke|full] [--dataset NAME] [--out DIR] [--seed N] [--seeds N] [--show] [--quiet]):"
    )
    for name in NAMES:
        print(f"  {name:34s} {title(name)}")
    print(f"  {'all':34s} every lab, one after another, with the same options")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-l", "--list", "list", "-h", "--help"):
        print_list()
        return 0
    from coursekit import lab

    name, options = argv[0], argv[1:]
    if name != "all" and name not in NAMES:
        print(f"labs: error: unknown lab {name!r}; `python -m labs` lists them", file=sys.stderr)
        return 2
    args = lab.argument_parser(f"python -m labs {name}").parse_args(options)
    if args.implementation:
        lab.use_implementation(args.implementation)
    lab.one_line_errors(name)
    status = 0
    for lab_name in NAMES if name == "all" else [name]:
        started = time.perf_counter()
        try:
            lab.run(
                lab_name,
                preset=args.preset,
                dataset=args.dataset,
                out=args.out,
                seed=args.seed,
                seeds=args.seeds,
                show=args.show,
                verbose=0 if args.quiet else 1,
                engine=args.engine,
            )
            code = 0
        except lab.ERRORS as error:
            print(f"{lab_name}: error: {lab.error_line(error)}", file=sys.stderr)
            code = 2
        if name == "all":
            print(f"[{lab_name}] exit {code}, {time.perf_counter() - started:.1f} s")
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
