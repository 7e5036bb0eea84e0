"""Load the component modules from another folder: a student's implementation.

`load_components(DIR)` executes DIR/coursekit/{initializers,layers,optimizers,
regularizers}.py as `coursekit.initializers` etc., before anything imports the
reference ones, so every lab, model and test uses them. A file that fails to load
(a syntax error, say) becomes a module whose every attribute raises an ImportError
with the original message: the other components still load. `modules` limits which
files are taken from DIR: the grader loads only the file it is checking, so that a
broken layers.py cannot fail the optimizer exercises.
"""

import importlib.util
import pathlib
import sys
import traceback
import types

COMPONENT_MODULES = ("initializers", "regularizers", "layers", "optimizers")


class BrokenModule(types.ModuleType):
    """Stands in for a student file that could not be loaded."""

    def __init__(self, name, path, error):
        super().__init__(name)
        self.__file__ = str(path)
        self._error = error

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise ImportError(f"{self.__file__} could not be loaded: {self._error}")


def load_components(folder, modules=None):
    """Replace coursekit's component modules (all, or those named in `modules`) by the files under `folder`/coursekit/."""
    package = sys.modules["coursekit"]
    root = pathlib.Path(folder).expanduser().resolve() / "coursekit"
    if not root.is_dir():
        raise ValueError(f"COURSEKIT_IMPLEMENTATION: no coursekit/ folder in {root.parent}")
    modules = COMPONENT_MODULES if modules is None else tuple(modules)
    unknown = sorted(set(modules) - set(COMPONENT_MODULES))
    if unknown:
        raise ValueError(f"unknown component module(s) {unknown}; valid: {', '.join(COMPONENT_MODULES)}")
    for name in COMPONENT_MODULES:
        if name not in modules:
            continue
        path = root / f"{name}.py"
        if not path.exists():
            continue  # that component stays the reference one
        full_name = f"coursekit.{name}"
        spec = importlib.util.spec_from_file_location(full_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[full_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # a student's file: report anything, crash on nothing
            last = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
            where = f" (line {getattr(error, 'lineno', None) or (last.lineno if last else '?')})"
            module = BrokenModule(full_name, path, f"{type(error).__name__}: {error}{where}")
            sys.modules[full_name] = module
        setattr(package, name, module)
