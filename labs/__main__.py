"""`python -m labs` lists the labs; `python -m labs NAME [options]` runs one; `python -m labs all [options]` runs them all."""

import importlib
import sys
import time

from labs import NAMES


def load(name):
    return importlib.import_module(f"labs.{name}").LAB


def print_list():
    print("Labs (python -m labs NAME [--preset smoke|full] [--dataset NAME] [--out DIR] [--seed N] [--show]):")
    for name in NAMES:
        print(f"  {name:34s} {load(name).description}")
    print("  all                                run every lab with the same options")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-l", "--list", "list", "-h", "--help"):
        print_list()
        return 0
    from coursekit.experiment import main as run_one

    name, options = argv[0], argv[1:]
    if name == "all":
        status = 0
        for lab_name in NAMES:
            started = time.perf_counter()
            code = run_one(load(lab_name), options)
            print(f"[{lab_name}] exit {code}, {time.perf_counter() - started:.1f} s")
            status = status or code
        return status
    if name not in NAMES:
        print(f"labs: error: unknown lab {name!r}; `python -m labs` lists them", file=sys.stderr)
        return 2
    return run_one(load(name), options)


if __name__ == "__main__":
    sys.exit(main())
