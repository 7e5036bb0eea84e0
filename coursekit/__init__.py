"""coursekit: the chapter "Techniques related to learning" as Keras 3 components.

Importing `coursekit` registers every custom component with Keras'
serialization, so a saved `.keras` model that uses them loads back with plain
`keras.models.load_model(path)` (no `custom_objects`).

Modules: `optimizers`, `initializers`, `layers`, `regularizers` (the
components), `reference` (the same formulas in NumPy), `gradcheck`, `data`,
`models`, `training`, `results`, `plots`, `runtime`.
"""

from coursekit import initializers, layers, optimizers, regularizers  # noqa: F401  (registers)

__version__ = "0.1.0"
