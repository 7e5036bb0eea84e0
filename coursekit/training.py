"""Training loops: several variants trained side by side on the same minibatches.

The chapter's experiments compare variants (optimizers, initial weights, BN on
and off, with and without regularization) that see the *same* minibatches.
`train_variants` does exactly that, and does it fast: on TensorFlow and JAX one
compiled step updates every variant on the shared batch (one gradient of the
summed, independent losses), and `steps_per_execution` steps run per call, so
small MLPs do not drown in per-step overhead (on a GPU especially). Other
backends fall back to one `train_on_batch` per variant.

Sampling:
- `"reference"`: minibatches drawn with replacement (`np.random.choice(n, batch)`),
  an "epoch" is `n / batch_size` iterations, and with `epochs=E` the run makes
  `(E - 1) * iterations_per_epoch + 1` updates, evaluating after update 1 and then
  once per epoch, exactly as the reference scripts do.
- `"epoch"`: ordinary epochs over fresh permutations, evaluated after each epoch.

The loss recorded at each iteration is the minibatch loss (data loss plus
weight-decay penalty) of the forward pass of that update, as Keras' `fit`
reports it. A variant whose loss turns NaN or infinite is marked diverged at that
iteration and the others go on.
"""

import dataclasses
import math
import warnings

import keras
import numpy as np

from coursekit.checks import check_number
from coursekit.models import classification_loss

SAMPLING = ("reference", "epoch")


@dataclasses.dataclass
class Variant:
    """One compared configuration: a unique name, a model and its optimizer.

    `label` (default: the name) is what results.csv calls the variant, and
    `factors` become extra columns, e.g. `label="bn", factors={"weight_scale": 0.1}`.
    """

    name: str
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    factors: dict = dataclasses.field(default_factory=dict)
    label: str | None = None


@dataclasses.dataclass
class History:
    """What one variant recorded: loss per iteration, metrics per evaluation."""

    variant: Variant
    losses: list = dataclasses.field(default_factory=list)
    metrics: dict = dataclasses.field(default_factory=dict)  # name -> [(step, value)]
    diverged_at: int | None = None

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
    """Train every variant on the same minibatches; return `{name: History}`.

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
        seed: Seed of the minibatch draws. Defaults to `0`.
        steps_per_execution: Updates per compiled call. Defaults to 50 on
            TensorFlow and JAX (every variant still sees every batch in order).
        verbose: 1 shows a progress bar, 0 is quiet.
        engine: `"auto"` (fused on TF/JAX), `"fused"` or `"per_variant"`.
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
    engine = _make_engine(engine, variants, x_train, y_train)
    chunk = int(steps_per_execution or (50 if isinstance(engine, _FusedEngine) else 1))
    check_number("steps_per_execution", chunk, low=1)

    histories = {v.name: History(v) for v in variants}
    sampler = BatchSampler(len(x_train), batch_size, sampling, seed)
    progress = keras.utils.Progbar(schedule.iterations, verbose=verbose, stateful_metrics=["loss"])
    stops = sorted(set(schedule.evaluations) | {schedule.iterations})
    done = 0
    for stop in stops:
        while done < stop:
            steps = min(chunk, stop - done)
            losses = engine.run(sampler.take(steps))  # (steps, variants)
            for column, history in enumerate(histories.values()):
                history.losses.extend(losses[:, column].tolist())
                if history.diverged_at is None and not np.isfinite(losses[:, column]).all():
                    history.diverged_at = done + 1 + int(np.argmin(np.isfinite(losses[:, column])))
                    warnings.warn(
                        f"variant {history.variant.name!r} diverged at iteration {history.diverged_at}", stacklevel=2
                    )
            done += steps
            finite = losses[-1][np.isfinite(losses[-1])]
            progress.update(done, [("loss", float(finite.mean()) if finite.size else float("nan"))])
        if stop in schedule.evaluations:
            step = schedule.evaluations[stop]
            for metric, (x, y) in eval_sets.items():
                for history, accuracy in zip(histories.values(), engine.accuracies(x, y)):
                    history.metrics.setdefault(metric, []).append((step, accuracy))
    engine.finish()
    return histories


def _make_engine(engine, variants, x_train, y_train):
    backend = keras.backend.backend()
    if engine not in ("auto", "fused", "per_variant"):
        raise ValueError(f"Unknown engine {engine!r}; valid: auto, fused, per_variant")
    if engine == "per_variant" or (engine == "auto" and backend not in ("tensorflow", "jax")):
        return _PerVariantEngine(variants, x_train, y_train)
    if backend == "tensorflow":
        return _TensorFlowEngine(variants, x_train, y_train)
    if backend == "jax":
        return _JaxEngine(variants, x_train, y_train)
    raise ValueError(f"the fused engine supports TensorFlow and JAX, not {backend!r}")


class _PerVariantEngine:
    """Any backend: each variant's own compiled `train_on_batch`, batch by batch."""

    def __init__(self, variants, x_train, y_train):
        self.variants, self.x, self.y = variants, x_train, y_train
        for v in variants:
            v.model.compile(optimizer=v.optimizer, loss=classification_loss())

    def run(self, index_chunk):
        losses = np.empty((len(index_chunk), len(self.variants)), dtype=np.float64)
        for row, idx in enumerate(index_chunk):
            xb, yb = self.x[idx], self.y[idx]
            for column, v in enumerate(self.variants):
                losses[row, column] = float(v.model.train_on_batch(xb, yb))
        return losses

    def accuracies(self, x, y):
        return [float(np.mean(np.argmax(v.model.predict_on_batch(x), axis=1) == y)) for v in self.variants]

    def finish(self):
        pass


class _FusedEngine:
    """Shared part of the fused engines: build optimizers, one loss for all variants."""

    def __init__(self, variants, x_train, y_train):
        self.variants = variants
        self.models = [v.model for v in variants]
        self.optimizers = [v.optimizer for v in variants]
        self.loss_fn = classification_loss()
        for model, optimizer in zip(self.models, self.optimizers):
            optimizer.build(model.trainable_variables)


class _TensorFlowEngine(_FusedEngine):
    def __init__(self, variants, x_train, y_train):
        super().__init__(variants, x_train, y_train)
        import tensorflow as tf

        self.tf = tf
        self.x, self.y = tf.constant(x_train), tf.constant(y_train)
        self._run = tf.function(self._steps, reduce_retracing=True, jit_compile=False)
        self._predict = tf.function(self._predict_all, reduce_retracing=True)

    def _steps(self, index_chunk):
        tf = self.tf
        steps = tf.shape(index_chunk)[0]
        out = tf.TensorArray(tf.float32, size=steps)
        for j in tf.range(steps):
            idx = index_chunk[j]
            xb, yb = tf.gather(self.x, idx), tf.gather(self.y, idx)
            with tf.GradientTape() as tape:
                losses = []
                for model in self.models:
                    loss = self.loss_fn(yb, model(xb, training=True))
                    if model.losses:
                        loss = loss + tf.add_n(model.losses)
                    losses.append(loss)
                # Each optimizer scales its own loss (loss scaling under mixed precision) and unscales in apply.
                total = tf.add_n([opt.scale_loss(loss) for opt, loss in zip(self.optimizers, losses)])
            variables = [m.trainable_variables for m in self.models]
            grads = tape.gradient(total, [v for vs in variables for v in vs])
            start = 0
            for optimizer, model_vars in zip(self.optimizers, variables):
                optimizer.apply(grads[start : start + len(model_vars)], model_vars)
                start += len(model_vars)
            out = out.write(j, tf.cast(tf.stack(losses), tf.float32))
        return out.stack()

    def run(self, index_chunk):
        return self._run(self.tf.constant(index_chunk, dtype=self.tf.int32)).numpy().astype(np.float64)

    def _predict_all(self, x):
        return [self.tf.argmax(model(x, training=False), axis=1, output_type=self.tf.int32) for model in self.models]

    def accuracies(self, x, y):
        predictions = self._predict(self.tf.constant(x))
        return [float(np.mean(p.numpy() == y)) for p in predictions]

    def finish(self):
        pass


class _JaxEngine(_FusedEngine):
    """Pure-function training: the variants' state flows through one jitted `lax.scan`."""

    def __init__(self, variants, x_train, y_train):
        super().__init__(variants, x_train, y_train)
        import jax
        import jax.numpy as jnp

        self.jax = jax
        self.x, self.y = jnp.asarray(x_train), jnp.asarray(y_train)
        self.state = self._read_state()
        self._run = jax.jit(self._scan, donate_argnums=0)
        self._predict = jax.jit(self._predict_all)

    def _read_state(self):
        return (
            [[v.value for v in m.trainable_variables] for m in self.models],
            [[v.value for v in m.non_trainable_variables] for m in self.models],
            [[v.value for v in o.variables] for o in self.optimizers],
        )

    def _losses(self, trainable, non_trainable, optimizer_vars, xb, yb):
        jnp = self.jax.numpy
        losses, scaled, new_non_trainable = [], [], []
        for model, optimizer, tv, ntv, ov in zip(
            self.models, self.optimizers, trainable, non_trainable, optimizer_vars
        ):
            logits, ntv, penalties = model.stateless_call(tv, ntv, xb, training=True, return_losses=True)
            loss = self.loss_fn(yb, logits)
            for penalty in penalties:
                loss = loss + penalty
            losses.append(loss)
            # Loss scaling (mixed precision) reads the optimizer's scale from its state, as Keras' JAX trainer does.
            with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, ov))):
                scaled.append(optimizer.scale_loss(loss))
            new_non_trainable.append(ntv)
        return jnp.sum(jnp.stack(scaled)), (jnp.stack(losses), new_non_trainable)

    def _scan(self, state, x, y, index_chunk):
        grad_fn = self.jax.value_and_grad(self._losses, has_aux=True)

        def one_step(state, idx):
            trainable, non_trainable, optimizer_vars = state
            (_, (losses, non_trainable)), grads = grad_fn(trainable, non_trainable, optimizer_vars, x[idx], y[idx])
            new_trainable, new_optimizer_vars = [], []
            for optimizer, tv, g, ov in zip(self.optimizers, trainable, grads, optimizer_vars):
                tv, ov = optimizer.stateless_apply(ov, g, tv)
                new_trainable.append(tv)
                new_optimizer_vars.append(ov)
            return (new_trainable, non_trainable, new_optimizer_vars), losses

        return self.jax.lax.scan(one_step, state, index_chunk)

    def run(self, index_chunk):
        self.state, losses = self._run(self.state, self.x, self.y, self.jax.numpy.asarray(index_chunk))
        return np.asarray(losses, dtype=np.float64)

    def _predict_all(self, state, x):
        trainable, non_trainable, _ = state
        return [
            model.stateless_call(tv, ntv, x, training=False)[0]
            for model, tv, ntv in zip(self.models, trainable, non_trainable)
        ]

    def accuracies(self, x, y):
        # argmax in NumPy: a jitted argmax leaves a jaxpr in one of JAX's caches for every new model.
        return [float(np.mean(np.argmax(np.asarray(logits), axis=1) == y)) for logits in self._predict(self.state, x)]

    def finish(self):
        """Write the trained state back into the Keras variables."""
        for owners, values in zip(
            (
                [m.trainable_variables for m in self.models],
                [m.non_trainable_variables for m in self.models],
                [o.variables for o in self.optimizers],
            ),
            self.state,
        ):
            for variables, arrays in zip(owners, values):
                for variable, array in zip(variables, arrays):
                    variable.assign(array)


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
