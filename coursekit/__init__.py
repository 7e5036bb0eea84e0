"""coursekit: the chapter "Techniques related to learning" as Keras 3 components.

Importing `coursekit` registers every custom component with Keras'
serialization, so a saved `.keras` model that uses them loads back with plain
`keras.models.load_model(path)` (no `custom_objects`). With the environment
variable COURSEKIT_IMPLEMENTATION=DIR, the components come from DIR/coursekit/*.py
instead (a student's implementation; see `coursekit.assignments`).

Modules: `optimizers`, `initializers`, `layers`, `regularizers` (the
components), `reference` (the same formulas in NumPy), `gradcheck`, `data`,
`models`, `training`, `results`, `plots`, `runtime`.
"""

import os

from coursekit.quiet import start_backend

__version__ = "0.1.0"

start_backend()  # Keras (and TensorFlow's C++ start-up log lines, which it keeps off the terminal)

# A student's own components (see coursekit.assignments) replace the reference ones
# when COURSEKIT_IMPLEMENTATION names a folder laid out like the project.
if os.environ.get("COURSEKIT_IMPLEMENTATION"):
    from coursekit.implementation import load_components

    load_components(os.environ["COURSEKIT_IMPLEMENTATION"])

from coursekit import initializers, layers, optimizers, regularizers  # noqa: E402, F401  (registers)
