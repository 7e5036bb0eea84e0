"""keras-tuner hyperparameter search for the chapter: `python -m tuning --help`.

`run_search(settings, out_dir)` runs (or resumes) a search and writes its report.
The package imports Keras lazily, so that `python -m tuning` can pick the backend first;
importing it changes no global state.
"""

__all__ = ["SearchSettings", "run_search"]


def __getattr__(name):
    if name == "run_search":
        from tuning.run import run_search

        return run_search
    if name == "SearchSettings":
        from tuning.search import SearchSettings

        return SearchSettings
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")
