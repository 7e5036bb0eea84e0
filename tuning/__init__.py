"""keras-tuner's tuners that train K trials at once, for any compiled Keras model, and the chapter's search.

    from tuning import RandomSearch, BayesianOptimization, Hyperband, GridSearch, Narrowing
    python -m tuning --help          # the chapter's search

`run_search(settings, out_dir)` runs (or resumes) the chapter's search and writes its report.
Importing the package changes nothing global and imports Keras lazily.
"""

import importlib
import sys

if sys.argv[:1] == ["-m"]:  # Python sets argv[0] to "-m" only while it starts `python -m tuning`
    import coursekit  # noqa: F401  (starts Keras quietly: see coursekit/__init__.py)

_EXPORTS = {
    "RandomSearch": "tuning.tuner",
    "BayesianOptimization": "tuning.tuner",
    "Hyperband": "tuning.tuner",
    "GridSearch": "tuning.tuner",
    "Narrowing": "tuning.tuner",
    "PopulationTuner": "tuning.tuner",
    "SearchSettings": "tuning.search",
    "run_search": "tuning.run",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
