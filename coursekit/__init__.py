"""coursekit: the chapter "Techniques related to learning" as Keras 3 components.

Importing `coursekit` registers every custom component with Keras'
serialization, so a saved `.keras` model that uses them loads back with plain
`keras.models.load_model(path)` (no `custom_objects`), and changes nothing else (no
device op, no redirected stream, no environment variable set) except when Python is
starting a `python -m ...` command of the kit (see below). With the environment
variable COURSEKIT_IMPLEMENTATION=DIR, the components come from DIR/coursekit/*.py
instead (a student's implementation; see `coursekit.assignments`).

Modules: `optimizers`, `initializers`, `layers`, `regularizers` (the
components), `reference` (the same formulas in NumPy), `gradcheck`, `data`,
`models`, `training`, `results`, `plots`, `runtime`.
"""

import os
import sys

__version__ = "0.2.0"

if sys.argv[:1] == ["-m"]:
    # Python is starting a `python -m labs...|tuning|coursekit.assignments` command (argv[0] is "-m"
    # only then): start Keras with TensorFlow's C++ start-up lines kept off the terminal, so that a
    # command's one-line error stays one line. A notebook or a program importing the kit skips this.
    from coursekit.quiet import start_backend

    start_backend()

# A student's own components (see coursekit.assignments) replace the reference ones
# when COURSEKIT_IMPLEMENTATION names a folder laid out like the project.
if os.environ.get("COURSEKIT_IMPLEMENTATION"):
    from coursekit.implementation import load_components

    load_components(os.environ["COURSEKIT_IMPLEMENTATION"])

from coursekit import initializers, layers, optimizers, regularizers  # noqa: E402, F401  (registers)
