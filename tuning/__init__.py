"""keras-tuner hyperparameter search for the chapter: `python -m tuning --help`.

`run_search(settings, out_dir)` runs (or resumes) a search and writes its report.
Importing the package changes nothing global and imports Keras lazily.
"""

import sys

if sys.argv[:1] == ["-m"]:  # Python sets argv[0] to "-m" only while it starts `python -m tuning`
    import coursekit  # noqa: F401  (starts Keras quietly: see coursekit/__init__.py)

__all__ = ["SearchSettings", "run_search"]


def __getattr__(name):
    if name == "run_search":
        from tuning.run import run_search

        return run_search
    if name == "SearchSettings":
        from tuning.search import SearchSettings

        return SearchSettings
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
