"""The learning-rate range test: one short run with an exponentially growing learning rate.

    from coursekit.lr_range import lr_range_test
    test = lr_range_test(model, x, y)      # a compiled Keras model, any backend
    test.frame                             # learning_rate, loss, smoothed_loss: one row per batch
    test.suggestion, test.rule             # a learning rate, and the rule that chose it
    test.figure("lr_range.png")            # the loss against the learning rate (log scale)

The idea is fastai's `lr_find` (and L. Smith's "cyclical learning rates"), written here for
Keras: batch i of `steps` is trained with the learning rate

    lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))

and its loss (this batch's loss, data loss plus penalties, not Keras' running mean) is
recorded and smoothed by a bias-corrected exponential moving average,

    a_i = beta * a_{i-1} + (1 - beta) * loss_i,   smoothed_i = a_i / (1 - beta ** (i + 1)).

The run stops early when the loss diverges: when it is not finite, or when the smoothed loss
exceeds `divergence` times its lowest value so far. Afterwards the model's variables (weights,
non-trainable statistics, random-number state) and the optimizer's (its learning rate, step
count and slots) are put back as they were, so the model can be trained as if the test had
not run.

Suggestions (`suggestions`, both computed; `rule` picks `suggestion`):
- `"steepest"` (the default): the learning rate where the smoothed loss falls fastest against
  log(lr), `argmin d smoothed / d log(lr)`, looked for before the smoothed loss's minimum;
- `"minimum/10"`: a tenth of the learning rate at the smoothed loss's minimum.
Both read one short run whose learning rate keeps growing; `search_range()` gives a span
around them for a search to narrow (from two decades below the suggestion up to the rate
where the loss diverged).
"""

import dataclasses
import math
import numbers

import numpy as np

RULES = ("steepest", "minimum/10")


@dataclasses.dataclass
class RangeTest:
    """What `lr_range_test` measured: the curve, the suggestions and why the run stopped."""

    frame: object  # pandas DataFrame: learning_rate, loss, smoothed_loss
    suggestions: dict
    rule: str
    stopped: str
    settings: dict

    @property
    def suggestion(self):
        """The suggested learning rate (by `rule`); NaN when the loss never fell."""
        return self.suggestions[self.rule]

    @property
    def minimum(self):
        """The learning rate at the smoothed loss's minimum."""
        frame = self.frame
        return float(frame["learning_rate"].iloc[int(np.argmin(frame["smoothed_loss"].to_numpy()))])

    def search_range(self, below=100.0):
        """A learning-rate range for a search to narrow: `(suggestion / below, the run's last learning rate)`.

        From two decades (by default) below the suggestion up to the rate where the run
        stopped (where the loss diverged, or `end_lr`): the span in which a fixed learning rate
        can train well. Raises ValueError when the test made no suggestion.
        """
        if not math.isfinite(self.suggestion):
            raise ValueError(
                f"the range test made no suggestion ({self.stopped}); try a smaller start_lr or more steps"
            )
        return (self.suggestion / below, float(self.frame["learning_rate"].iloc[-1]))

    def summary(self):
        """Numbers for config.json."""
        return {
            "suggestion": self.suggestion,
            "rule": self.rule,
            "suggestions": dict(self.suggestions),
            "learning_rate_at_minimum": self.minimum,
            "batches": len(self.frame),
            "stopped": self.stopped,
        }

    def rows(self, variant="lr_range_test"):
        """The curve as tidy rows (`variant, step, metric, value`; step = batch 1, 2, ...) for results.csv."""
        return [
            {"variant": variant, "step": step, "metric": metric, "value": float(value)}
            for step, row in enumerate(self.frame.to_dict(orient="records"), start=1)
            for metric, value in row.items()
        ]

    def panel(self, title=None):
        """The figure's panel (`coursekit.plots`): raw and smoothed loss against the learning rate, log scale."""
        from coursekit.plots import Line

        frame = self.frame
        lr = frame["learning_rate"].to_numpy()
        smoothed = frame["smoothed_loss"].to_numpy()
        finite = np.isfinite(smoothed)
        before = smoothed[finite][: max(int(np.argmin(smoothed[finite])), 1) + 1] if finite.any() else np.ones(1)
        raw = frame["loss"].to_numpy()[: len(before)]
        low, high = float(np.nanmin(raw)), float(np.nanmax(before))
        vlines = [(value, f"{rule}: {value:.3g}") for rule, value in self.suggestions.items() if math.isfinite(value)]
        return {
            "title": title or f"learning-rate range test: suggestion {self.suggestion:.3g} ({self.rule})",
            "lines": [
                Line(lr, frame["loss"].to_numpy(), label="loss of each batch", style="-", color="lightgray"),
                Line(lr, smoothed, label="smoothed", style="-", color="C0"),
            ],
            "vlines": vlines,
            "xscale": "log",
            "xlabel": "learning rate",
            "ylabel": "loss",
            "ylim": (low - 0.15 * (high - low), high + 0.4 * (high - low)),
        }

    def figure(self, path=None, *, show=False):
        """The figure: saved to `path` (PNG) and that path returned, or its PNG bytes without a path."""
        from coursekit import plots

        if path is None:
            return plots.figure_png([self.panel()], panel_size=(7, 4.2))
        return plots.plot_panels([self.panel()], path, show=show, panel_size=(7, 4.2))


def lr_range_test(
    model,
    x,
    y,
    *,
    start_lr=1e-6,
    end_lr=10.0,
    steps=100,
    batch_size=32,
    beta=0.9,
    divergence=4.0,
    rule="steepest",
    seed=0,
):
    """Run the learning-rate range test on a compiled Keras `model` (see the module docstring).

    Args:
        model: A compiled Keras model (`model.compile(optimizer, loss)`) whose optimizer has a
            plain (not scheduled) learning rate.
        x, y: Training data (arrays); batches are drawn from consecutive random permutations.
        start_lr, end_lr: The first and last learning rate. Defaults to `1e-6` and `10`.
        steps: Batches in the run (at most; it stops when the loss diverges). Defaults to `100`.
        batch_size: Defaults to `32`.
        beta: Smoothing of the loss curve. Defaults to `0.9`, an average over about the last ten
            batches (fastai's 0.98 averages about fifty: half of a 100-batch run, whose curve then
            lags the learning rate by decades).
        divergence: Stop when the smoothed loss exceeds this many times its minimum. Defaults to `4`.
        rule: `"steepest"` or `"minimum/10"`, which suggestion `suggestion` is. Defaults to `"steepest"`.
        seed: Seed of the batch order. Defaults to `0`.

    Returns:
        A `RangeTest`: `frame`, `suggestion`, `suggestions`, `stopped`, `figure()`.
    """
    import pandas as pd

    _check(model, x, y, start_lr, end_lr, steps, batch_size, beta, divergence, rule)
    x, y = np.asarray(x), np.asarray(y)
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved_model = [v.numpy() for v in model.variables]
    saved_optimizer = [v.numpy() for v in optimizer.variables]
    rates = start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(steps - 1, 1))
    rng = np.random.default_rng(seed)
    order = np.empty(0, dtype=np.int64)
    losses, smoothed, average, lowest = [], [], 0.0, math.inf
    stopped = f"reached end_lr={end_lr:g}"
    try:
        for i, rate in enumerate(rates):
            if len(order) < batch_size:
                order = np.concatenate([order, rng.permutation(len(x))])
            rows, order = order[:batch_size], order[batch_size:]
            optimizer.learning_rate = float(rate)
            model.reset_metrics()  # the loss of this batch, not a running mean over batches
            loss = float(model.train_on_batch(x[rows], y[rows], return_dict=True)["loss"])
            average = beta * average + (1 - beta) * loss
            value = average / (1 - beta ** (i + 1))
            losses.append(loss)
            smoothed.append(value)
            if not math.isfinite(loss) or not math.isfinite(value):
                stopped = f"the loss was not finite at learning rate {rate:.3g}"
                break
            lowest = min(lowest, value)
            if value > divergence * lowest:
                stopped = f"the loss diverged at learning rate {rate:.3g} ({divergence:g}x its minimum)"
                break
    finally:  # the model and its optimizer as they were, whatever happened
        for variable, value in zip(model.variables, saved_model):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, saved_optimizer):
            variable.assign(value)
        model.reset_metrics()
    frame = pd.DataFrame({"learning_rate": rates[: len(losses)], "loss": losses, "smoothed_loss": smoothed})
    settings = {
        "start_lr": start_lr,
        "end_lr": end_lr,
        "steps": steps,
        "batch_size": batch_size,
        "beta": beta,
        "divergence": divergence,
        "seed": seed,
    }
    return RangeTest(frame, suggest(frame), rule, stopped, settings)


def suggest(frame):
    """Both suggestions (see the module docstring) for a curve: `{"steepest": lr, "minimum/10": lr}` (NaN: none)."""
    lr = frame["learning_rate"].to_numpy()
    smoothed = frame["smoothed_loss"].to_numpy()
    finite = np.isfinite(smoothed)
    lr, smoothed = lr[finite], smoothed[finite]
    if len(smoothed) < 3:
        return {"steepest": math.nan, "minimum/10": math.nan}
    lowest = int(np.argmin(smoothed))
    skip = max(len(frame) // 10, 1)  # the first batches: the average has seen too few losses
    if lowest < skip + 2:  # the loss never fell
        return {"steepest": math.nan, "minimum/10": math.nan}
    slope = np.gradient(smoothed[: lowest + 1], np.log(lr[: lowest + 1]))
    return {"steepest": float(lr[skip + int(np.argmin(slope[skip:]))]), "minimum/10": float(lr[lowest] / 10)}


def _check(model, x, y, start_lr, end_lr, steps, batch_size, beta, divergence, rule):
    from coursekit.checks import check_number

    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise ValueError("lr_range_test needs a compiled model: call model.compile(optimizer, loss) first")
    try:
        model.optimizer.learning_rate = model.optimizer.learning_rate  # a schedule refuses to be set
    except (TypeError, AttributeError):
        raise ValueError(
            "lr_range_test sets the learning rate itself: compile the model with a float learning rate, not a schedule"
        ) from None
    if rule not in RULES:
        raise ValueError(f"Unknown rule {rule!r}; valid: {', '.join(RULES)}")
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr), ("beta", beta), ("divergence", divergence)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"`{name}` must be a number; received {name}={value!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"`{name}` must be an integer; received {name}={value!r}")
    check_number("start_lr", start_lr, low=0.0, low_open=True)
    check_number("end_lr", end_lr, low=0.0, low_open=True)
    if not start_lr < end_lr:
        raise ValueError(f"start_lr must be below end_lr; received start_lr={start_lr}, end_lr={end_lr}")
    check_number("steps", steps, low=3)
    check_number("batch_size", batch_size, low=1)
    check_number("beta", beta, low=0.0, high=1.0, high_open=True)
    check_number("divergence", divergence, low=1.0, low_open=True)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if batch_size > len(x):
        raise ValueError(f"batch_size={batch_size} is larger than the {len(x)} rows of x")
