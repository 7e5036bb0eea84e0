"""`fit` for a population: several compiled Keras models, each trained as `model.fit` would train it.

    histories = fit_population(members, x, y, batch_size=100, epochs=50, validation_data=(x_val, y_val))

Every member is a compiled model with its own seed, callbacks and (optionally) a state to
start from. Members that share an `architecture` (`coursekit.population`) train as one
vectorized program, one call per epoch: every full batch of the epoch and its last partial
batch, then each evaluation set batch by batch in inference mode, inside the program, and
one transfer of the epoch's logs to the host. Each member sees what `fit` would show it:

- its own data order: with `shuffle=True` the permutation of epoch e is drawn from
  `(seed, e)` (so a run continued from epoch e sees the batches an uninterrupted run would);
  with `shuffle=False` the rows in order;
- the logs `fit` computes, "loss" and the compiled metrics as means over the epoch's
  training batches (training mode), and "val_loss", "val_<metric>" over the validation data
  (`validation_data`, or `validation_split`, the last fraction of the rows, as `fit` takes
  it), plus `extra_validation`: more data evaluated the same way under other prefixes (the
  course's "train_" accuracy of the whole training set in inference mode);
- its own copies of the callbacks the engine honours (`SUPPORTED_CALLBACKS`, and subclasses of
  `EpochCallback`), called with its logs at each epoch, with a view of the member as
  `self.model` (`stop_training`, `get_weights`, `set_weights`). A member whose callbacks stop
  it (EarlyStopping, TerminateOnNaN) leaves the population at the end of that epoch: the
  others are stacked again without it, so it costs no more compute. TerminateOnNaN stops a
  member at the end of the epoch in which its loss became NaN or infinite (`fit` stops after
  the batch; the weights are not finite either way).

A trial trained here equals the same model trained alone by `model.fit(..., shuffle=False)`
with the same initial weights, epoch by epoch, within float32 round-off (a test, on every
backend). Returns a `keras.callbacks.History` per member.
"""

import copy
import dataclasses
import math
import time
import warnings

import keras
import numpy as np

from coursekit import population

# Callbacks the engine calls with each member's logs, as `fit` would (TerminateOnNaN and
# EarlyStopping may stop a member; CSVLogger writes each member's rows).
SUPPORTED_CALLBACKS = (
    keras.callbacks.EarlyStopping,
    keras.callbacks.TerminateOnNaN,
    keras.callbacks.CSVLogger,
    keras.callbacks.History,
)


class EpochCallback(keras.callbacks.Callback):
    """Base of callbacks the engine honours: only `on_train_begin/end` and `on_epoch_begin/end` are called.

    `self.model` is the member's view: `stop_training`, `get_weights()` and `set_weights()`.
    """


class NotVectorizable(Exception):
    """Raised when the inputs or the models cannot train in the compiled population engine."""


@dataclasses.dataclass
class Member:
    """One model to fit: a unique name, a compiled model, the seed of its data order, its callbacks.

    `state` (optional) is where training starts: `[trainable, non_trainable, optimizer_variables]`
    arrays, as `population.Engine.member_state` returns them (a Hyperband trial continued).
    """

    name: str
    model: keras.Model
    seed: int = 0
    callbacks: list = dataclasses.field(default_factory=list)
    state: list | None = None


def check_callbacks(callbacks):
    """Raise ValueError naming the first callback the engine cannot honour."""
    for callback in callbacks or ():
        if not isinstance(callback, (*SUPPORTED_CALLBACKS, EpochCallback)):
            honoured = ", ".join(cls.__name__ for cls in SUPPORTED_CALLBACKS)
            raise ValueError(
                f"the callback {type(callback).__name__} cannot be honoured inside a population (the engine "
                f"calls each member's callbacks once per epoch; it honours {honoured}, TensorBoard in a search, "
                "and subclasses of coursekit.fitting.EpochCallback): remove it"
            )


def check_vectorizable(x, y):
    """Raise `NotVectorizable` with the reason when `(x, y)` is not data the engine can hold (arrays)."""
    for name, data in (("x", x), ("y", y)):
        for leaf in keras.tree.flatten(data):
            if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
                raise NotVectorizable(
                    f"{name} is a {type(leaf).__name__}, not arrays (a tf.data.Dataset, PyDataset or generator)"
                )


def split_validation(x, y, validation_split):
    """`(x, y), (x_val, y_val)`: the last `validation_split` of the rows held out, as `fit` does."""
    n = _rows(y)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"validation_split={validation_split} of {n} rows leaves an empty split")

    def part(data, start, end):
        return keras.tree.map_structure(lambda a: a[start:end], data)

    return (part(x, 0, split_at), part(y, 0, split_at)), (part(x, split_at, n), part(y, split_at, n))


def fit_population(
    members,
    x,
    y,
    *,
    batch_size=None,
    epochs=1,
    initial_epoch=0,
    validation_data=None,
    validation_split=0.0,
    validation_batch_size=None,
    extra_validation=None,
    shuffle=True,
    verbose=0,
):
    """Fit every member on `(x, y)` as `model.fit` would; `{name: keras.callbacks.History}`.

    Args:
        members: `Member`s with distinct names and compiled models.
        x, y: Arrays (or nests of arrays: a model of several inputs), one row per example.
        batch_size: Rows per batch. Defaults to 32, as `fit`.
        epochs, initial_epoch: Train epochs `initial_epoch` .. `epochs - 1`, as `fit`.
        validation_data, validation_split, validation_batch_size: As `fit`.
        extra_validation: `{prefix: (x, y)}` evaluated after every epoch like the validation
            data (which is the prefix "val_").
        shuffle: A fresh permutation per member and epoch (see the module docstring), or the
            rows in order.
        verbose: 1 prints a line per epoch, 0 is quiet.
    """
    members = list(members)
    names = [m.name for m in members]
    if not members or len(set(names)) != len(names):
        raise ValueError(f"members need distinct names; received {names}")
    for member in members:
        if not getattr(member.model, "compiled", False):
            raise ValueError(
                f"the model of {member.name!r} is not compiled: call model.compile(optimizer, loss, metrics)"
            )
        check_callbacks(member.callbacks)
    if shuffle not in (True, False):
        raise ValueError(f"shuffle must be True or False; received shuffle={shuffle!r}")
    batch_size = 32 if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received batch_size={batch_size}")
    x, y = _arrays(x), _arrays(y)
    if validation_split and validation_data is None:
        (x, y), validation_data = split_validation(x, y, validation_split)
    n = _rows(y)
    if n == 0 or _rows(x) != n:
        raise ValueError(f"x has {_rows(x)} rows but y has {n}")
    evaluations = {}
    if validation_data is not None:
        evaluations["val_"] = tuple(_arrays(part) for part in validation_data[:2])
    for prefix, (ex, ey) in (extra_validation or {}).items():
        evaluations[prefix] = (_arrays(ex), _arrays(ey))
    for prefix, (ex, ey) in evaluations.items():
        if _rows(ex) != _rows(ey) or _rows(ey) == 0:
            raise ValueError(f"the {prefix}data has {_rows(ex)} rows of x and {_rows(ey)} of y")
    eval_batch = int(validation_batch_size or batch_size)
    fitter = _Fitter(members, x, y, batch_size, evaluations, eval_batch, shuffle, verbose)
    return fitter.fit(int(initial_epoch), int(epochs))


class _MemberView:
    """What a member's callbacks see as `self.model`: stop_training, and its weights in the population."""

    def __init__(self, fitter, member):
        self._fitter, self._member, self.stop_training = fitter, member, False

    def get_weights(self):
        """The member's weights in the order of `model.weights` (as `model.get_weights()`)."""
        trainable, non_trainable, _ = self._fitter.member_state(self._member)
        return [[*trainable, *non_trainable][i] for i in _weight_positions(self._member.model)]

    def set_weights(self, weights):
        self._fitter.set_member_weights(self._member, weights)

    def __getattr__(self, name):  # anything else: the member's own Keras model (name, optimizer, ...)
        return getattr(self._member.model, name)


class _Fitter:
    def __init__(self, members, x, y, batch_size, evaluations, eval_batch, shuffle, verbose):
        self.members, self.batch, self.shuffle, self.verbose = members, batch_size, shuffle, verbose
        self.n = _rows(y)
        self.sample = keras.tree.map_structure(lambda a: a[:1], (x, y))
        self.data = population.to_tensor((x, y))  # on the device once, for every engine
        self.prefixes = list(evaluations)
        self.eval_batches = [population.batched(ex, ey, eval_batch) for ex, ey in evaluations.values()]
        self.engines, self.where = [], {}  # [(engine, members)], member name -> (engine, index in it)
        self.keys = {}  # member name -> its architecture (computed once: a model's config is slow to serialize)

    # -- the engines of the active members ---------------------------------------------------

    def _stack(self, members):
        """One engine per architecture over `members` (their states from their Keras variables)."""
        for engine, _ in self.engines:
            engine.finish()
        self.engines, self.where = [], {}  # members left out (stopped) are back in their Keras variables
        by_key = {}
        for member in members:
            if member.name not in self.keys:
                population._prepare(_variant(member), self.sample)
                self.keys[member.name] = population.architecture(member.model, member.model.optimizer)
            by_key.setdefault(self.keys[member.name], []).append(member)
        for key, group in by_key.items():
            variants = [_variant(m) for m in group]
            engine = population.Engine(variants, cache=True, sample=self.sample, keys=[key] * len(group))
            self._add_engine(engine, group)

    def _add_engine(self, engine, group):
        engine.data = self.data
        self.engines.append((engine, group))
        for index, member in enumerate(group):
            self.where[member.name] = (engine, index)

    def member_state(self, member):
        """The member's state: in its engine while it trains, else in its Keras variables."""
        if member.name in self.where:
            engine, index = self.where[member.name]
            return engine.member_state(index)
        model = member.model
        return [[v.numpy() for v in part] for part in (model.trainable_variables, model.non_trainable_variables, [])]

    def set_member_weights(self, member, weights):
        """Set the member's weights, given in the order of `model.weights`."""
        model = member.model
        values = [v.numpy() for v in [*model.trainable_variables, *model.non_trainable_variables]]
        if member.name in self.where:
            engine, index = self.where[member.name]
            trainable, non_trainable, _ = engine.member_state(index)
            values = [*trainable, *non_trainable]
        for position, weight in zip(_weight_positions(model), weights):
            values[position] = weight
        count = len(model.trainable_variables)
        if member.name in self.where:
            engine.set_member_weights(index, values[:count], values[count:])
            return
        for variable, value in zip([*model.trainable_variables, *model.non_trainable_variables], values):
            variable.assign(value)

    # -- training ---------------------------------------------------------------------------

    def fit(self, initial_epoch, epochs):
        histories = {m.name: keras.callbacks.History() for m in self.members}
        views = {m.name: _MemberView(self, m) for m in self.members}
        callbacks = {m.name: [*m.callbacks, histories[m.name]] for m in self.members}
        for member in self.members:
            if member.state is not None:
                population._prepare(_variant(member), self.sample)
                _assign_state(member.model, member.state)
            for callback in callbacks[member.name]:
                callback.set_model(views[member.name])
                callback.set_params({"epochs": epochs, "steps": math.ceil(self.n / self.batch), "verbose": 0})
        active = list(self.members)
        self._stack(active)
        for member in active:
            for callback in callbacks[member.name]:
                callback.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                if not active:
                    break
                started = time.perf_counter()
                for member in active:
                    for callback in callbacks[member.name]:
                        callback.on_epoch_begin(epoch)
                epoch_logs, finite = self._run_epoch(epoch)
                for member in active:
                    for callback in callbacks[member.name]:
                        if isinstance(callback, keras.callbacks.TerminateOnNaN) and not finite[member.name]:
                            callback.on_batch_end(0, {"loss": float("nan")})  # its test of a batch's loss
                        callback.on_epoch_end(epoch, dict(epoch_logs[member.name]))
                if self.verbose:
                    self._print_epoch(epoch, epochs, epoch_logs, time.perf_counter() - started)
                stopped = [m for m in active if views[m.name].stop_training]
                if stopped:
                    active = [m for m in active if m not in stopped]
                    self._stack(active)
        finally:
            for engine, _ in self.engines:
                engine.finish()
            self.engines, self.where = [], {}  # every state is back in the Keras variables
        for member in self.members:
            member.model.optimizer.finalize_variable_values(member.model.trainable_variables)  # as `fit` does
            for callback in callbacks[member.name]:
                callback.on_train_end()
            histories[member.name].set_model(member.model)
        return histories

    def _run_epoch(self, epoch):
        """Every active member's logs of this epoch, `{name: {metric: float}}`, and `{name: all losses finite}`."""
        full = self.n // self.batch
        logs_of, finite_of, pending = {}, {}, list(self.engines)
        while pending:
            engine, group = pending.pop(0)
            orders = np.stack([self._order(member.seed, epoch) for member in group])
            indices = orders[:, : full * self.batch].reshape(len(group), full, self.batch)
            tail = orders[:, full * self.batch :]
            try:
                losses, logs, evaluated = engine.run_epoch(indices, tail, self.eval_batches)
            except Exception as error:
                if len(group) == 1 or engine.states is None:
                    raise
                pending = self._one_by_one(engine, group, error) + pending
                continue
            for index, member in enumerate(group):
                member_logs = {name: float(values[index]) for name, values in logs.items()}
                for prefix, values in zip(self.prefixes, evaluated):
                    member_logs.update({f"{prefix}{name}": float(v[index]) for name, v in values.items()})
                logs_of[member.name] = member_logs
                finite_of[member.name] = bool(np.isfinite(losses[:, index]).all())
        return logs_of, finite_of

    def _one_by_one(self, engine, group, error):
        """A group whose vectorized program fails: its members train as groups of one from now on (said once)."""
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        warnings.warn(
            f"{len(group)} members could not be trained as one vectorized program ({type(error).__name__}: "
            f"{reason[:200]}); they train one at a time",
            stacklevel=4,
        )
        engine.finish()
        self.engines = [(e, g) for e, g in self.engines if e is not engine]
        singles = []
        for member in group:
            self._add_engine(population.Engine([_variant(member)], sample=self.sample), [member])
            singles.append(self.engines[-1])
        return singles

    def _order(self, seed, epoch):
        if not self.shuffle:
            return np.arange(self.n, dtype="int32")
        return np.random.default_rng([int(seed), int(epoch)]).permutation(self.n).astype("int32")

    def _print_epoch(self, epoch, epochs, logs, seconds):
        values = [member_logs.get("val_loss", member_logs.get("loss")) for member_logs in logs.values()]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        best = f", best {'val_loss' if 'val_' in self.prefixes else 'loss'} {min(finite):.4f}" if finite else ""
        print(f"epoch {epoch + 1}/{epochs}: {len(logs)} members{best} ({seconds:.2f} s)", flush=True)


def _variant(member):
    from coursekit.training import Variant

    return Variant(member.name, member.model, member.model.optimizer, seed=member.seed)


def _weight_positions(model):
    """For each of `model.weights`, its position in `trainable_variables + non_trainable_variables`."""
    positions = {id(v): i for i, v in enumerate([*model.trainable_variables, *model.non_trainable_variables])}
    return [positions[id(v)] for v in model.weights]


def _assign_state(model, state):
    trainable, non_trainable, optimizer_variables = state
    for variables, values in (
        (model.trainable_variables, trainable),
        (model.non_trainable_variables, non_trainable),
        (model.optimizer.variables, optimizer_variables),
    ):
        for variable, value in zip(variables, values):
            variable.assign(value)


def _arrays(data):
    return keras.tree.map_structure(
        lambda a: a if hasattr(a, "shape") and not isinstance(a, list) else np.asarray(a), data
    )


def _rows(data):
    return int(keras.tree.flatten(data)[0].shape[0])


def copy_callbacks(callbacks):
    """Deep copies of `callbacks`, one set per member (as keras-tuner copies them per execution)."""
    return [copy.deepcopy(callback) for callback in callbacks or ()]
