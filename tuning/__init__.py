"""keras-tuner hyperparameter search for the chapter: `python -m tuning --help`.

`run_search(settings, out_dir)` runs (or resumes) a search and writes its report.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tuning.run import run_search  # noqa: E402
from tuning.search import SearchSettings  # noqa: E402

__all__ = ["SearchSettings", "run_search"]
