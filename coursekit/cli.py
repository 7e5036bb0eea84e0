"""Command-line pieces shared by `python -m labs`, `python -m tuning` and `python -m coursekit.assignments`."""

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer_at_least(low, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, not {text!r}")
        return value

    return parse


non_negative_int = _integer_at_least(0, "non-negative")
positive_int = _integer_at_least(1, "positive")
