"""Training loops: several variants trained side by side, in one compiled program.

The chapter's experiments compare variants (optimizers, initial weights, BN on
and off, with and without regularization) that see the *same* minibatches; a
search trains trials that each see their own. `train_variants` does both, fast:
on TensorFlow, JAX and PyTorch one compiled program (`coursekit.population`) updates every
variant, `steps_per_execution` steps per call, with the training step written once over
Keras' stateless API. By default (`engine="auto"`, or `"population"`) variants that share an
architecture train as one vectorized program over stacked parameters, their hyperparameters
as inputs: a lab's 32 networks of one shape are one population, not 32 copies of the step in
one program. Their results equal the one-at-a-time run within float32 round-off. With
`engine="fused"` the program runs the variants one after the other, each bit for bit as it
would run alone. Other backends fall back to one `train_on_batch` per variant.

Sampling:
- `"reference"`: minibatches drawn with replacement (`np.random.choice(n, batch)`),
  an "epoch" is `n / batch_size` iterations, and with `epochs=E` the run makes
  `(E - 1) * iterations_per_epoch + 1` updates, evaluating after update 1 and then
  once per epoch, exactly as the reference scripts do.
- `"epoch"`: ordinary epochs over fresh permutations, evaluated after each epoch.

Every variant draws its minibatches from the run's `seed`, shared, unless its
`Variant.seed` names another seed (variants of equal seed share that stream).
The loss recorded at each iteration is the minibatch loss (data loss plus
weight-decay penalty) of the forward pass of that update, as Keras' `fit`
reports it. A variant whose loss turns NaN or
infinite is marked diverged at that iteration and the others go on. At the end,
as `fit` does, each optimizer finalizes its variables (`use_ema` writes the
averaged weights into the model); after an error, the variables hold the state
of the last completed step (on a CPU) or chunk of steps (on a GPU).
"""

import dataclasses
import math
import warnings

import keras
import numpy as np

from coursekit.checks import check_number
from coursekit.models import classification_loss

SAMPLING = ("reference", "epoch")
ENGINES = ("auto", "fused", "population", "per_variant")


@dataclasses.dataclass
class Variant:
    """One compared configuration: a unique name, a model and its optimizer.

    `label` (default: the name) is what results.csv calls the variant, and
    `factors` become extra columns, e.g. `label="bn", factors={"weight_scale": 0.1}`.
    `seed` gives the variant the minibatch order of that seed (a search trial has its
    own; variants of equal seed share theirs); by default (None) it draws the run's.
    """

    name: str
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    factors: dict = dataclasses.field(default_factory=dict)
    label: str | None = None
    seed: int | None = None


@dataclasses.dataclass
class History:
    """What one variant recorded: loss per iteration, metrics per evaluation."""

    variant: Variant
    losses: list = dataclasses.field(default_factory=list)
    metrics: dict = dataclasses.field(default_factory=dict)  # name -> [(step, value)]
    diverged_at: int | None = None
    trained_with: int = 1  # members of its vectorized group, itself included (engines "auto", "population"; else 1)

    def final(self, metric):
        """The last recorded value of `metric` (NaN if it was never recorded)."""
        values = self.metrics.get(metric)
        return values[-1][1] if values else float("nan")

    def rows(self, record_loss=True):
        """Tidy rows `variant, <factors>, step, metric, value`."""
        base = {"variant": self.variant.label or self.variant.name, **self.variant.factors}
        rows = []
        if record_loss:
            rows += [{**base, "step": i, "metric": "loss", "value": v} for i, v in enumerate(self.losses, 1)]
        for metric, values in self.metrics.items():
            rows += [{**base, "step": step, "metric": metric, "value": value} for step, value in values]
        if self.diverged_at is not None:
            rows.append({**base, "step": self.diverged_at, "metric": "diverged", "value": 1.0})
        return rows


@dataclasses.dataclass
class Schedule:
    """Iterations to run and the iterations after which to evaluate (1-based) -> step labels."""

    iterations: int
    evaluations: dict  # iteration -> step label (epoch)
    iterations_per_epoch: int


def make_schedule(train_size, batch_size, *, iterations=None, epochs=None, sampling="reference", eval_every=None):
    """Work out how many updates a run makes and when it evaluates (see the module docstring).

    With `iterations=N` the run evaluates every `eval_every` iterations (if given) and
    after the last one, labelling each evaluation with its iteration number.
    """
    if sampling not in SAMPLING:
        raise ValueError(f"Unknown sampling {sampling!r}; valid: {', '.join(SAMPLING)}")
    check_number("batch_size", batch_size, low=1)
    if (iterations is None) == (epochs is None):
        raise ValueError("give exactly one of iterations= and epochs=")
    if sampling == "reference":
        per_epoch = max(train_size // batch_size, 1)
    else:
        per_epoch = math.ceil(train_size / batch_size)
    if iterations is not None:
        check_number("iterations", iterations, low=1)
        every = int(check_number("eval_every", eval_every, low=1) or iterations)
        evaluations = {i: i for i in range(every, int(iterations) + 1, every)}
        evaluations[int(iterations)] = int(iterations)
        return Schedule(int(iterations), evaluations, per_epoch)
    check_number("epochs", epochs, low=1)
    if sampling == "reference":
        total = (epochs - 1) * per_epoch + 1
        evaluations = {1 + e * per_epoch: e for e in range(epochs)}
    else:
        total = epochs * per_epoch
        evaluations = {(e + 1) * per_epoch: e + 1 for e in range(epochs)}
    return Schedule(int(total), evaluations, per_epoch)


class BatchSampler:
    """Minibatch indices: with replacement (reference) or from consecutive permutations (epoch)."""

    def __init__(self, train_size, batch_size, sampling, seed):
        self.n, self.batch, self.sampling = train_size, batch_size, sampling
        self.rng = np.random.default_rng(seed)
        self._pool = np.empty(0, dtype=np.int64)

    def take(self, steps):
        if self.sampling == "reference":
            return self.rng.integers(0, self.n, size=(steps, self.batch))
        needed = steps * self.batch
        while len(self._pool) < needed:
            self._pool = np.concatenate([self._pool, self.rng.permutation(self.n)])
        chunk, self._pool = self._pool[:needed], self._pool[needed:]
        return chunk.reshape(steps, self.batch)


def train_variants(
    variants,
    x_train,
    y_train,
    *,
    batch_size=100,
    iterations=None,
    epochs=None,
    sampling="reference",
    eval_sets=None,
    eval_every=None,
    seed=0,
    steps_per_execution=None,
    verbose=1,
    engine="auto",
):
    """Train every variant on its minibatches; return `{name: History}`.

    Args:
        variants: `Variant`s (distinct names) whose models map `x_train` to logits.
        x_train, y_train: Training arrays (float features, integer labels).
        batch_size: Minibatch size. Defaults to `100`.
        iterations / epochs: Length of the run (exactly one of them).
        sampling: `"reference"` (with replacement) or `"epoch"`. Defaults to `"reference"`.
        eval_sets: `{metric_name: (x, y)}` whose accuracy is recorded at each
            evaluation, e.g. `{"train_accuracy": ..., "test_accuracy": ...}`.
        eval_every: With `iterations=`, evaluate every this many iterations (and
            always after the last one).
        seed: Seed of the minibatches the variants share (those whose `Variant.seed` is
            None). Defaults to `0`.
        steps_per_execution: Updates per compiled call. Defaults to 50 on
            TensorFlow and JAX (every variant still sees every batch in order).
        verbose: 1 shows a progress bar, 0 is quiet.
        engine: `"fused"` (one compiled program, one variant after the other inside it:
            every variant computes exactly as it would alone), `"population"` (variants that
            share an architecture train as one vectorized program, see
            `coursekit.population`), `"per_variant"` (one `train_on_batch` per variant, any
            backend) or `"auto"` (population on TensorFlow, JAX and PyTorch, per_variant
            elsewhere). A population's members equal their fused runs within float32
            round-off (the order of a vectorized sum differs); fused equals each alone bit for
            bit. Defaults to `"auto"`.
    """
    variants = list(variants)
    names = [v.name for v in variants]
    if not variants or len(set(names)) != len(names):
        raise ValueError(f"variants need distinct names; received {names}")
    x_train = np.asarray(x_train, dtype="float32")
    y_train = np.asarray(y_train, dtype="int32")
    if len(x_train) != len(y_train) or len(x_train) == 0:
        raise ValueError(f"x_train has {len(x_train)} rows but y_train has {len(y_train)}")
    schedule = make_schedule(
        len(x_train), batch_size, iterations=iterations, epochs=epochs, sampling=sampling, eval_every=eval_every
    )
    eval_sets = {name: (np.asarray(x, "float32"), np.asarray(y, "int32")) for name, (x, y) in (eval_sets or {}).items()}
    check_number("steps_per_execution", steps_per_execution, low=1)
    batches = _Batches(variants, len(x_train), batch_size, sampling, seed)
    engine = _make_engine(engine, variants, x_train, y_train, int(steps_per_execution or 50), batches.streams)
    chunk = engine.steps_per_call

    histories = {v.name: History(v) for v in variants}
    for members in getattr(engine, "groups", ()):
        for index in members:
            histories[variants[index].name].trained_with = len(members)
    progress = keras.utils.Progbar(schedule.iterations, verbose=verbose, stateful_metrics=["loss"])
    stops = sorted(set(schedule.evaluations) | {schedule.iterations})
    done = 0
    try:
        for stop in stops:
            while done < stop:
                steps = min(chunk, stop - done)
                evaluated = eval_sets if done + steps == stop and stop in schedule.evaluations else {}
                losses, counts = engine.run(batches.take(steps), list(evaluated.values()))  # in one call
                _record_losses(histories, losses, done)
                done += steps
                finite = losses[-1][np.isfinite(losses[-1])]
                progress.update(done, [("loss", float(finite.mean()) if finite.size else float("nan"))])
                for (metric, (_, y)), correct in zip(evaluated.items(), counts):
                    for history, count in zip(histories.values(), correct):
                        history.metrics.setdefault(metric, []).append(
                            (schedule.evaluations[stop], float(count) / len(y))
                        )
    finally:
        engine.finish()  # the trained state goes back into the Keras variables, even after an error
    engine.finalize()
    return histories


def _record_losses(histories, losses, done):
    """Append each variant's losses; mark (and warn about) the first non-finite one."""
    for column, history in enumerate(histories.values()):
        history.losses.extend(losses[:, column].tolist())
        if history.diverged_at is None and not np.isfinite(losses[:, column]).all():
            history.diverged_at = done + 1 + int(np.argmin(np.isfinite(losses[:, column])))
            warnings.warn(f"variant {history.variant.name!r} diverged at iteration {history.diverged_at}", stacklevel=3)


class _Batches:
    """The streams of minibatch rows, one per distinct seed: `Variant.seed`, or the run's `seed` when it is None.

    Variants of equal seed draw the same minibatches (a lab's variants, or its variants of one
    seed in a run over several seeds); `streams[i]` is the stream variant i draws from.
    """

    def __init__(self, variants, train_size, batch_size, sampling, seed):
        seeds = [seed if v.seed is None else v.seed for v in variants]
        distinct = list(dict.fromkeys(seeds))
        self.samplers = [BatchSampler(train_size, batch_size, sampling, s) for s in distinct]
        self.streams = [distinct.index(s) for s in seeds]

    def take(self, steps):
        """`(streams, steps, batch)` row indices for the next `steps` updates."""
        return np.stack([sampler.take(steps) for sampler in self.samplers])


def _make_engine(engine, variants, x_train, y_train, steps_per_call, streams):
    from coursekit import population

    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if engine == "per_variant" or (engine == "auto" and not population.supported()):
        return _PerVariantEngine(variants, x_train, y_train, streams)
    compiled = population.Engine(
        variants,
        group=engine in ("auto", "population"),
        steps_per_call=steps_per_call,
        streams=streams,
        cache=engine in ("auto", "population"),
        sample=(x_train[:2], y_train[:2]),
    )
    compiled.set_data(x_train, y_train)
    return compiled


class _PerVariantEngine:
    """Any backend: each variant's own compiled `train_on_batch`, batch by batch."""

    steps_per_call = 1

    def __init__(self, variants, x_train, y_train, streams):
        self.variants, self.x, self.y, self.streams = variants, x_train, y_train, streams
        for v in variants:
            v.model.compile(optimizer=v.optimizer, loss=classification_loss())

    def run(self, indices, eval_sets=()):
        losses = np.empty((indices.shape[1], len(self.variants)), dtype=np.float64)
        for column, (v, stream) in enumerate(zip(self.variants, self.streams)):
            for step, idx in enumerate(indices[stream]):
                v.model.reset_metrics()  # Keras 3.10 returns the running mean over calls, not this batch's loss
                losses[step, column] = float(v.model.train_on_batch(self.x[idx], self.y[idx]))
        counts = [
            [int(np.sum(np.argmax(v.model.predict_on_batch(x), axis=1) == y)) for v in self.variants]
            for x, y in eval_sets
        ]
        return losses, counts

    def finish(self):
        pass

    def finalize(self):
        for v in self.variants:  # as `fit` does at the end of training
            v.optimizer.finalize_variable_values(v.model.trainable_variables)


def optimizer_path(optimizer, loss_fn, start, steps):
    """Positions of a point moved by `optimizer` down `loss_fn` for `steps` updates.

    `loss_fn(w)` maps a length-d tensor to a scalar; gradients come from the
    backend's autodiff. Returns an array of shape (steps + 1, d), the start first.
    """
    from coursekit.gradcheck import autodiff_gradients

    position = keras.Variable(np.asarray(start, dtype="float32"), name="position")
    path = [position.numpy().copy()]
    for _ in range(int(steps)):
        [grad] = autodiff_gradients(lambda: loss_fn(position.value), [position])
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad), position)])
        path.append(np.asarray(position.numpy()).copy())
    return np.array(path)


def history_rows(histories, record_loss=True):
    """All variants' tidy rows, in variant order."""
    return [row for history in histories.values() for row in history.rows(record_loss)]


def late_mean_losses(histories, fraction=0.1):
    """Each variant's mean loss over the last `fraction` of its iterations: {label: value}."""
    summary = {}
    for name, history in histories.items():
        tail = max(int(len(history.losses) * fraction), 1)
        summary[f"{name} mean loss, last {tail} iterations"] = round(float(np.mean(history.losses[-tail:])), 4)
    return summary
