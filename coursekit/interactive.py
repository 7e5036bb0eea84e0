"""Interactive figures: sliders and buttons (ipywidgets' built-in widgets) that redraw a figure at once.

    from coursekit.interactive import OptimizerExplorer, bowl
    OptimizerExplorer(bowl)          # in a notebook: the figure with its controls

An `Explorer` is a figure drawn from the values of its controls. In a notebook it shows as
the figure (an `ipywidgets.Image`) under its controls; moving a control redraws it. Its output
also carries the figure at its initial settings as a plain PNG, the static fallback that
GitHub, nbviewer and any front end without widgets show instead (`lab.interactive` saves that
PNG with the lab's figures). Only ipywidgets' built-in widgets are used, which Colab renders
(ipywidgets 7) as well as Jupyter (ipywidgets 8).

- `OptimizerExplorer`: the optimizers on the bowl, a learning-rate slider per optimizer,
  momentum, rho and beta sliders and the start point; every path is computed by the kit's own
  Keras optimizers (or a student's classes) with Keras' built-in optimizers beside them, each
  path one compiled call.
- `ActivationExplorer`: the activations of five layers for sigmoid, tanh and ReLU, with a
  standard-deviation slider and Xavier / He buttons.
- `RunExplorer`: a slider over runs computed beforehand (weight scales, lambdas, rates).
"""

import base64
import importlib.util
import io
import math
import time

import keras
import numpy as np
from keras import ops

from coursekit import plots

OPTIMIZERS = ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")
# The hyperparameters (besides the learning rate) each optimizer takes from the sliders.
HYPERPARAMETERS = {
    "SGD": (),
    "Momentum": ("momentum",),
    "Nesterov": ("momentum",),
    "AdaGrad": (),
    "RMSprop": ("rho",),
    "Adam": ("beta_1", "beta_2"),
}
DEFAULTS = {"momentum": 0.9, "rho": 0.99, "beta_1": 0.9, "beta_2": 0.999}
NOTE_BOX = {"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5}  # text readable over the plot
BOOK_RATES = {"SGD": 0.95, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 1.5, "RMSprop": 0.1, "Adam": 0.3}


def bowl(w):
    """The book's bowl f(x, y) = x^2 / 20 + y^2 (minimum at the origin); `w` holds (x, y)."""
    return w[0] ** 2 / 20.0 + w[1] ** 2


class Explorer:
    """A figure redrawn from its controls, with its initial state as a static PNG.

    Subclasses define `initial` (the controls' starting values), `make_controls()` (the
    ipywidgets, named as in `initial`) and `render(**values)` (the figure as PNG bytes).

    - `explorer.fallback_png()`: the figure at the initial values (the static fallback);
    - `explorer.widget`: the controls above the figure (built on first use);
    - `explorer.set(name=value, ...)`: move controls as a student would (the figure redraws);
    - `explorer.seconds`: how long the last redraw took.
    """

    title = "interactive figure"

    def __init__(self):
        self.initial = {}
        self.controls = {}
        self.seconds = None
        self.error = None
        self._widget = None
        self._fallback = None

    def make_controls(self):
        raise NotImplementedError

    def render(self, **values):
        raise NotImplementedError

    def fallback_png(self):
        if self._fallback is None:
            self._fallback = self.render(**self.initial)
        return self._fallback

    @property
    def values(self):
        if not self.controls:
            return dict(self.initial)
        return {name: control.value for name, control in self.controls.items()}

    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as widgets

            self.controls = self.make_controls()
            self.image = widgets.Image(value=self.fallback_png(), format="png", layout=widgets.Layout(max_width="100%"))
            self.status = widgets.Label(value="")
            for control in self.controls.values():
                control.observe(self._changed, names="value")
            self._widget = widgets.VBox([self.layout_controls(widgets), self.image, self.status])
        return self._widget

    def layout_controls(self, widgets):
        """The controls' box (a row of columns of at most four); subclasses may arrange them otherwise."""
        items = list(self.controls.values())
        columns = [widgets.VBox(items[i : i + 4]) for i in range(0, len(items), 4)]
        return widgets.HBox(columns)

    def _changed(self, change=None):
        self.redraw()

    def redraw(self):
        """Draw the figure for the controls' current values into the image."""
        started = time.perf_counter()
        try:
            png = self.render(**self.values)
        except Exception as error:  # keep the last figure and say what went wrong, on one line
            self.error = _one_line(error)
            if self._widget is not None:
                self.status.value = f"could not redraw: {self.error}"
            return
        self.error = None
        self.seconds = time.perf_counter() - started
        if self._widget is not None:
            self.image.value = png
            self.status.value = self.status_text()

    def status_text(self):
        return f"redrawn in {self.seconds * 1000:.0f} ms"

    def set(self, **values):
        """Move the named controls to `values` (one redraw per control moved, as a student's moves).

        A slider over a list of values (`log_slider`, `RunExplorer`) goes to its nearest step.
        """
        self.widget  # noqa: B018  (builds the controls)
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"unknown control(s) {', '.join(unknown)}; valid: {', '.join(self.controls)}")
        for name, value in values.items():
            control = self.controls[name]
            steps = [option[1] if isinstance(option, tuple) else option for option in getattr(control, "options", ())]
            if steps and value not in steps and all(isinstance(step, (int, float)) for step in steps):
                value = min(
                    steps, key=lambda step: abs(math.log(step / value)) if step > 0 < value else abs(step - value)
                )
            control.value = value
        return self

    def _repr_mimebundle_(self, include=None, exclude=None):
        widget = self.widget
        return {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": widget.model_id,
            },
            "image/png": base64.b64encode(self.fallback_png()).decode("ascii"),
            "text/plain": f"<{self.title}: an interactive figure; its static version is the PNG beside this text>",
        }


def log_slider(description, value, low=1e-3, high=10.0, per_decade=20, **style):
    """A slider over a log grid (`per_decade` steps per decade, from `low` to `high`) that holds `value` exactly.

    A `SelectionSlider`: a `FloatLogSlider` would snap a value such as the book's 0.95 to its
    own grid (1.0) as soon as a front end shows it, and redraw for the snapped value.
    """
    import ipywidgets as widgets

    count = round(math.log10(high / low) * per_decade)
    grid = {float(f"{low * 10 ** (k / per_decade):.3g}") for k in range(count + 1)} | {float(value)}
    options = [(f"{v:.3g}", v) for v in sorted(grid)]
    return widgets.SelectionSlider(options=options, value=float(value), description=description, **style)


# -- fast drawing: a figure whose moving parts are redrawn over a saved background -------------


class _BlitFigure:
    """A matplotlib figure whose `animated` artists are redrawn over its saved background (PNG bytes out).

    Everything else (axes, contour lines, labels) is drawn once; a redraw paints only the moving
    artists, about 25 ms for six panels where a full draw takes about 150 ms.
    """

    def __init__(self, fig, dpi=80):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.fig, self.canvas = fig, FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        self.background = None
        self.artists = []

    def animate(self, artist):
        artist.set_animated(True)
        self.artists.append(artist)
        return artist

    def png(self):
        from PIL import Image

        if self.background is None:
            self.canvas.draw()  # animated artists are left out of a full draw
            self.background = self.canvas.copy_from_bbox(self.fig.bbox)
        self.canvas.restore_region(self.background)
        for artist in self.artists:
            if artist.get_visible():
                self.fig.draw_artist(artist)
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(self.canvas.buffer_rgba())).convert("RGB").save(
            buffer, format="PNG", compress_level=1
        )
        return buffer.getvalue()


# -- the optimizers on the bowl ---------------------------------------------------------------


def current_optimizers(path=None):
    """The optimizer classes as the kit's file defines them now (a student's edits included), freshly loaded.

    `path` defaults to this kit's `coursekit/optimizers.py`. The module is loaded under its
    own name and replaces neither the one already imported nor its classes in Keras' registry
    of serializable objects (what `keras.saving` and `keras.optimizers.deserialize` find).
    """
    import coursekit

    path = path or (coursekit.__path__[0] + "/optimizers.py")
    spec = importlib.util.spec_from_file_location("coursekit.optimizers", path)
    module = importlib.util.module_from_spec(spec)
    registered = keras.saving.get_custom_objects()
    before = dict(registered)
    try:
        spec.loader.exec_module(module)
    finally:
        registered.clear()
        registered.update(before)
    return module


def keras_builtin(name, learning_rate, momentum=0.9, rho=0.99, beta_1=0.9, beta_2=0.999):
    """Keras' own optimizer beside the course's `name`: SGD, SGD(momentum), SGD(nesterov), Adagrad, RMSprop, Adam."""
    builtins = keras.optimizers
    return {
        "SGD": lambda: builtins.SGD(learning_rate),
        "Momentum": lambda: builtins.SGD(learning_rate, momentum=momentum),
        "Nesterov": lambda: builtins.SGD(learning_rate, momentum=momentum, nesterov=True),
        "AdaGrad": lambda: builtins.Adagrad(learning_rate),
        "RMSprop": lambda: builtins.RMSprop(learning_rate, rho=rho),
        "Adam": lambda: builtins.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2),
    }[name]()


def _jit(function):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(function)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, autograph=False, reduce_retracing=True)
    return None


def _first_call(program, *args):
    """The compiling call, with the backend's start-up and tracing messages kept off the page.

    A figure traces one program per optimizer, each once; TensorFlow counts those traces
    together and warns about "retracing", and its XLA runtime logs a C++ line on first use.
    """
    import logging

    from coursekit.quiet import quiet_stderr

    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with quiet_stderr():
            return program(*args)
    finally:
        logger.setLevel(level)


def _gradient(loss):
    """The gradient of `loss(w)` with respect to the tensor `w`, by the backend's autodiff (inside a compiled function)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.grad(loss)
    import tensorflow as tf

    def gradient(w):
        with tf.GradientTape() as tape:
            tape.watch(w)
            value = loss(w)
        return tape.gradient(value, w)

    return gradient


def _stateless_apply(optimizer, optimizer_values, grads, trainable_values):
    if keras.backend.backend() == "tensorflow":
        from coursekit.keras_internals import base_stateless_apply

        return base_stateless_apply(optimizer, optimizer_values, grads, trainable_values)
    return optimizer.stateless_apply(optimizer_values, grads, trainable_values)


class PathProgram:
    """The path of one optimizer down `loss` from a start point: `steps` updates in one compiled call.

    `make(learning_rate, **hyperparameters)` builds the optimizer. The start point, the learning
    rate (an optimizer variable) and the hyperparameters named in `tuned` are inputs of the
    compiled program (bound to the optimizer's attributes while it is traced), so moving a slider
    never recompiles. On backends without a compiled path (PyTorch), or when tracing fails (a
    student's `update_step` written with Python control flow on a hyperparameter, say), each call
    runs `steps` eager `apply_gradients` instead (`mode` says which).
    """

    def __init__(self, make, loss, steps, tuned=(), **hyperparameters):
        self.make, self.loss, self.steps, self.tuned = make, loss, int(steps), tuple(tuned)
        self.fixed = hyperparameters
        self.mode = "compiled"
        self._program = None
        self._optimizer = None
        self._traced = False

    def __call__(self, start, learning_rate, **tuned):
        if self.mode == "compiled":
            try:
                return self._compiled(start, learning_rate, tuned)
            except NotImplementedError:
                raise
            except Exception:  # not traceable: fall back to plain eager updates
                self.mode = "eager"
        return self._eager(start, learning_rate, tuned)

    def _eager(self, start, learning_rate, tuned):
        from coursekit.training import optimizer_path

        optimizer = self.make(learning_rate, **self.fixed, **tuned)
        return optimizer_path(optimizer, self.loss, start, self.steps)

    def _compiled(self, start, learning_rate, tuned):
        if self._program is None:
            initial = {name: tuned[name] for name in self.tuned}
            self._optimizer = self.make(learning_rate, **self.fixed, **initial)
            self._optimizer.build([keras.Variable(np.zeros(2, "float32"), name="position")])
            self._program = _jit(lambda start, state, values: self._path(start, state, values))
            if self._program is None:
                raise RuntimeError(f"no compiled path on the {keras.backend.backend()} backend")
        self._optimizer.learning_rate = float(learning_rate)
        state = [v.value for v in self._optimizer.variables]
        values = [ops.convert_to_tensor(np.float32(tuned[name])) for name in self.tuned]
        inputs = (ops.convert_to_tensor(np.asarray(start, "float32")), state, values)
        if not self._traced:
            path = _first_call(self._program, *inputs)
            self._traced = True
        else:
            path = self._program(*inputs)
        return ops.convert_to_numpy(path).astype(np.float64)

    def _path(self, start, state, values):
        optimizer, gradient = self._optimizer, _gradient(self.loss)
        saved = {name: getattr(optimizer, name) for name in self.tuned}
        try:
            for name, value in zip(self.tuned, values):
                setattr(optimizer, name, value)

            def step(i, carry):
                w, state, path = carry
                [w], state = _stateless_apply(optimizer, list(state), [gradient(w)], [w])
                path = ops.slice_update(path, (i + 1, 0), ops.expand_dims(w, 0))
                return w, list(state), path

            path = ops.slice_update(ops.zeros((self.steps + 1, 2)), (0, 0), ops.expand_dims(start, 0))
            _, _, path = ops.fori_loop(0, self.steps, step, (start, list(state), path))
        finally:
            for name, value in saved.items():
                setattr(optimizer, name, value)
        return path


class OptimizerExplorer(Explorer):
    """The optimizers on a 2-D loss (the book's bowl): sliders for the learning rates, momentum, rho, betas, the start.

    One panel per optimizer (`OPTIMIZERS`): the path of the course's class (red dots: the kit's
    own, or `classes` such as a student's, see `current_optimizers`) and, dashed, the path of
    Keras' built-in beside it (`keras_builtin`: the same rule for SGD, Momentum, Nesterov and
    Adam; AdaGrad's starts its history at 0.1; RMSprop's puts epsilon inside the square root, a
    difference too small to see, as both get the slider's rho). Each panel says where the
    paths end. Each path is one compiled call (`PathProgram`); a class that is not written yet
    (NotImplementedError) shows its message instead of a path.

    Args:
        loss: `loss(w)` of a tensor `w` of shape (2,), in `keras.ops`. Defaults to `bowl`.
        start: The start point. Defaults to `(-7, 2)`.
        steps: Updates per path. Defaults to `30`.
        learning_rates: `{optimizer: rate}` to start from. Defaults to the book's.
        classes: Where the course's classes come from (a module). Defaults to `coursekit.optimizers`.
        names: The optimizers drawn. Defaults to `OPTIMIZERS`.
    """

    title = "optimizers on the bowl"

    def __init__(self, loss=bowl, *, start=(-7.0, 2.0), steps=30, learning_rates=None, classes=None, names=OPTIMIZERS):
        super().__init__()
        if classes is None:
            from coursekit import optimizers as classes
        self.loss, self.steps, self.classes, self.names = loss, int(steps), classes, tuple(names)
        rates = {**BOOK_RATES, **dict(learning_rates or {})}
        self.initial = {
            **{f"{name} learning rate": float(rates[name]) for name in self.names},
            **DEFAULTS,
            "start x": float(start[0]),
            "start y": float(start[1]),
            "Keras built-ins": True,
        }
        self._programs = {}
        self._cache = {}  # paths already computed: a slider moved recomputes only its optimizer's
        self.paths = {}  # {optimizer: {"course": path or None, "keras": path}} of the last redraw
        self.messages = {}  # {optimizer: why the course's path is missing}
        self._figure = None

    # ---- controls

    def make_controls(self):
        import ipywidgets as widgets

        style = {"description_width": "145px"}
        wide = widgets.Layout(width="340px")
        controls = {}
        for name in self.names:
            key = f"{name} learning rate"
            controls[key] = log_slider(f"{name} lr", self.initial[key], style=style, layout=wide)
        short, narrow = {"description_width": "85px"}, widgets.Layout(width="310px")
        for key, low, high, step in (
            ("momentum", 0.0, 0.99, 0.01),
            ("rho", 0.0, 0.999, 0.001),
            ("beta_1", 0.0, 0.99, 0.01),
            ("beta_2", 0.9, 0.9999, 0.0001),
        ):
            controls[key] = widgets.FloatSlider(
                value=self.initial[key], min=low, max=high, step=step, description=key, readout_format=".4g",
                style=short, layout=narrow,
            )  # fmt: skip
        for key, bound in (("start x", 9.5), ("start y", 4.5)):  # the bowl's extent
            controls[key] = widgets.FloatSlider(
                value=self.initial[key], min=-bound, max=bound, step=0.1, description=key, style=short, layout=narrow
            )
        controls["Keras built-ins"] = widgets.Checkbox(value=True, description="Keras built-ins (dashed)", indent=False)
        return controls

    def layout_controls(self, widgets):
        """Three columns: the learning rates; momentum, rho and the betas; the start point."""
        rates = [self.controls[f"{name} learning rate"] for name in self.names]
        hyper = [self.controls[key] for key in DEFAULTS]
        start = [self.controls[key] for key in ("start x", "start y", "Keras built-ins")]
        return widgets.HBox([widgets.VBox(rates), widgets.VBox(hyper), widgets.VBox(start)])

    # ---- computing

    def _program(self, name, source, fixed):
        key = (name, source, tuple(sorted(fixed.items())))
        if key not in self._programs:
            tuned = [] if source == "keras" and name in ("Momentum", "Nesterov") else HYPERPARAMETERS[name]
            if source == "course":
                cls = getattr(self.classes, name)

                def make(learning_rate, cls=cls, **hyper):
                    return cls(learning_rate, **hyper)
            else:

                def make(learning_rate, name=name, **hyper):
                    return keras_builtin(name, learning_rate, **hyper)

            self._programs[key] = PathProgram(make, self.loss, self.steps, tuned=tuned, **fixed)
        return self._programs[key]

    def compute(self, **values):
        """Every path for these control values: `{optimizer: {"course": path, "keras": path}}`."""
        start = (values["start x"], values["start y"])
        paths, messages = {}, {}
        for name in self.names:
            hyper = {key: values[key] for key in HYPERPARAMETERS[name]}
            rate = values[f"{name} learning rate"]
            paths[name] = {}
            for source in ("course", "keras"):
                # Keras' SGD decides in Python whether it has momentum: there it is fixed, one program per value.
                static = source == "keras" and name in ("Momentum", "Nesterov")
                key = (name, source, start, rate, tuple(hyper.items()))
                if key not in self._cache:
                    program = self._program(name, source, hyper if static else {})
                    try:
                        self._cache[key] = program(start, rate, **({} if static else hyper)), None
                    except Exception as error:  # a class not written yet, or one that fails: say so in its panel
                        self._cache[key] = None, _one_line(error)
                paths[name][source], message = self._cache[key]
                if message:
                    messages[name] = message
        if len(self._cache) > 4096:
            self._cache.clear()
        self.paths, self.messages = paths, messages
        return paths

    @property
    def modes(self):
        """How each of the course's classes computes its path: "compiled" or "eager"."""
        return {key[0]: program.mode for key, program in self._programs.items() if key[1] == "course"}

    # ---- drawing

    def _build_figure(self):
        from matplotlib.figure import Figure

        ncols = 3 if len(self.names) > 4 else 2
        nrows = -(-len(self.names) // ncols)
        fig = Figure(figsize=(4.6 * ncols, 3.5 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        X, Y = np.meshgrid(np.arange(-10, 10, 0.05), np.arange(-5, 5, 0.05))
        Z = ops.convert_to_numpy(self.loss(ops.convert_to_tensor(np.stack([X, Y]).astype("float32"))))
        Z = np.where(Z > 7, 0, Z)  # as the book: no contour lines beyond the plotted levels
        blit = _BlitFigure(fig)
        self._artists = {}
        for ax, name in zip(axes, self.names):
            ax.contour(X, Y, Z, levels=20)
            ax.plot(0, 0, "+", color="black")
            ax.set_xlim(-10, 10)
            ax.set_ylim(-5, 5)
            ax.set_title(name)
            (course,) = ax.plot([], [], "o-", color="red", markersize=3.5, linewidth=1.2, label="course")
            (builtin,) = ax.plot([], [], "x--", color="C0", markersize=4, linewidth=1, label="Keras")
            text = ax.text(0.02, 0.97, "", transform=ax.transAxes, ha="left", va="top", fontsize="small", bbox=NOTE_BOX)
            self._artists[name] = tuple(blit.animate(artist) for artist in (course, builtin, text))
        axes[0].legend(loc="lower right", fontsize="small")
        for ax in axes[len(self.names) :]:
            ax.axis("off")
        fig.tight_layout()
        return blit

    def render(self, **values):
        values = {**self.initial, **values}
        paths = self.compute(**values)
        if self._figure is None:
            self._figure = self._build_figure()
        for name in self.names:
            course, builtin, text = self._artists[name]
            ours, theirs = paths[name]["course"], paths[name]["keras"]
            course.set_data(*(ours.T if ours is not None else ([], [])))
            builtin.set_data(*(theirs.T if theirs is not None else ([], [])))
            builtin.set_visible(bool(values["Keras built-ins"]))
            hyper = ", ".join(f"{key} {values[key]:.4g}" for key in HYPERPARAMETERS[name])
            lines = [f"lr {values[f'{name} learning rate']:.3g}" + (f", {hyper}" if hyper else "")]
            if ours is not None:
                lines.append(f"end ({ours[-1, 0]:.3f}, {ours[-1, 1]:.3f})")
            else:
                lines.append(self.messages.get(name, "").split(":")[0][:60])
            if theirs is not None and values["Keras built-ins"]:
                same = ours is not None and np.abs(ours - theirs).max() < 1e-3
                lines.append(
                    "Keras: the same path" if same else f"Keras ends ({theirs[-1, 0]:.3f}, {theirs[-1, 1]:.3f})"
                )
            text.set_text("\n".join(lines))
        return self._figure.png()

    def status_text(self):
        eager = [name for name, mode in self.modes.items() if mode == "eager"]
        note = f"; computed eagerly (slower): {', '.join(eager)}" if eager else ""
        return f"redrawn in {self.seconds * 1000:.0f} ms{note}"


def _one_line(error):
    from coursekit.lab import error_line

    return error_line(error)


# -- the initial weights: activations layer by layer --------------------------------------------

ACTIVATIONS = ("sigmoid", "tanh", "relu")
RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 1.0)}


class ActivationExplorer(Explorer):
    """Histograms of each layer's activations for sigmoid, tanh and ReLU, for any initial-weight scale.

    The book's experiment (`samples` random inputs of `units` features through `layers`
    Dense layers of `units` units, no bias): a standard-deviation slider for the kit's
    `Normal(std)`, and buttons for `Xavier` (1/sqrt(n)) and `He` (sqrt(2/n)). The weights are
    drawn by the kit's initializers from the same seed at every redraw, so moving the slider
    rescales one draw. Every panel notes its activations' standard deviation.
    """

    title = "activations per layer"

    def __init__(self, *, samples=1000, units=100, layers=5, bins=30, seed=0, rule="std", std=1.0):
        super().__init__()
        self.samples, self.units, self.layers, self.bins, self.seed = samples, units, layers, bins, seed
        self.x = np.random.default_rng(seed).standard_normal((samples, units)).astype("float32")
        self.initial = {"rule": rule, "std": float(std)}
        self.activations = {}  # {activation: [array per layer]} of the last redraw
        self._figure = None

    def make_controls(self):
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        return {
            "rule": widgets.ToggleButtons(
                options=["std", "Xavier", "He"], value=self.initial["rule"], description="initial weights", style=style
            ),
            "std": log_slider(
                "std (rule 'std')", self.initial["std"], style=style, layout=widgets.Layout(width="420px")
            ),
        }

    def initializer(self, rule, std):
        from coursekit.initializers import He, Normal, Xavier

        seed = keras.random.SeedGenerator(self.seed)
        if rule == "std":
            return Normal(float(std), seed=seed)
        return {"Xavier": Xavier, "He": He}[rule](seed=seed)

    def compute(self, rule, std):
        """`{activation: [activations of each layer]}` (NumPy) for this initial-weight rule."""
        out = {}
        for activation in ACTIVATIONS:
            initializer = self.initializer(rule, std)
            function = keras.activations.get(activation)
            x, outputs = ops.convert_to_tensor(self.x), []
            for _ in range(self.layers):
                x = function(ops.matmul(x, initializer((self.units, self.units))))
                outputs.append(ops.convert_to_numpy(x))
            out[activation] = outputs
        self.activations = out
        return out

    def _build_figure(self):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2.3 * self.layers, 2.0 * len(ACTIVATIONS)))
        axes = fig.subplots(len(ACTIVATIONS), self.layers, squeeze=False)
        blit = _BlitFigure(fig)
        self._artists = {}
        for row, activation in zip(axes, ACTIVATIONS):
            low, high = RANGES[activation]
            edges = np.linspace(low, high, self.bins + 1)
            for layer, ax in enumerate(row, start=1):
                stairs = ax.stairs(np.zeros(self.bins), edges, fill=True, color="C0")
                ax.set_xlim(low, high)
                ax.set_yticks([])
                ax.set_title(f"{activation}, layer {layer}", fontsize="small")
                note = ax.text(
                    0.97, 0.95, "", transform=ax.transAxes, ha="right", va="top", fontsize="x-small", bbox=NOTE_BOX
                )
                self._artists[activation, layer] = (blit.animate(stairs), blit.animate(note), ax)
        self._title = blit.animate(fig.suptitle("activations per layer, initial weights std 1 (n = 100)"))
        fig.tight_layout()
        return blit

    def render(self, rule, std):
        activations = self.compute(rule, std)
        if self._figure is None:
            self._figure = self._build_figure()
        for activation, outputs in activations.items():
            low, high = RANGES[activation]
            for layer, values in enumerate(outputs, start=1):
                stairs, note, ax = self._artists[activation, layer]
                counts, _ = np.histogram(values, bins=self.bins, range=(low, high))
                share = counts / values.size
                # ReLU: about half its outputs are exactly 0; that one bar is cut, as in the book.
                top = share[1:].max() if activation == "relu" else share.max()
                ax.set_ylim(0, max(top, 1e-3) * 1.15)
                stairs.set_data(share)
                outside = float(np.mean((values < low) | (values > high)))
                text = f"std {values.std():.3g}"
                if activation == "relu":
                    text += f"\n{np.mean(values == 0):.0%} at 0"
                if outside >= 0.01:
                    text += f"\n{outside:.0%} off the axis"
                note.set_text(text)
        scale = {"std": f"std {std:.3g}", "Xavier": "Xavier: std 1/sqrt(n)", "He": "He: std sqrt(2/n)"}[rule]
        self._title.set_text(f"activations per layer, initial weights {scale} (n = {self.units})")
        return self._figure.png()


# -- a slider over runs computed beforehand --------------------------------------------------------


class RunExplorer(Explorer):
    """A slider over precomputed runs: `panels(value)` gives the figure's panels for one of `options`.

    Args:
        description: The slider's label, e.g. "weight std".
        options: `[(label, value), ...]` the slider steps through, in order.
        panels: `panels(value)`: the figure's panels (see `coursekit.plots`) for that run.
        initial: The value shown first (and saved as the static PNG). Defaults to the first.
        **layout: `coursekit.plots.draw_panels` keyword arguments (ncols, panel_size, ...).
    """

    title = "runs"

    def __init__(self, description, options, panels, *, initial=None, **layout):
        super().__init__()
        self.description, self.options, self.panels, self.layout = description, list(options), panels, layout
        values = [value for _, value in self.options]
        if not values:
            raise ValueError("RunExplorer needs at least one option")
        if initial is not None and initial not in values:
            raise ValueError(f"initial={initial!r} is not one of the options {values}")
        self.initial = {"run": values[0] if initial is None else initial}
        self.title = f"runs by {description}"
        self._pngs = {}

    def make_controls(self):
        import ipywidgets as widgets

        return {
            "run": widgets.SelectionSlider(
                options=self.options,
                value=self.initial["run"],
                description=self.description,
                style={"description_width": "initial"},
                layout=widgets.Layout(width="520px"),
                continuous_update=True,
            )
        }

    def render(self, run):
        if run not in self._pngs:  # each run is drawn once
            self._pngs[run] = plots.figure_png(self.panels(run), **self.layout)
        return self._pngs[run]


def log_options(values, fmt="{:.3g}"):
    """`[(label, value)]` for a `RunExplorer` slider over numbers (labels formatted with `fmt`)."""
    return [(fmt.format(value) if math.isfinite(value) else str(value), value) for value in values]
