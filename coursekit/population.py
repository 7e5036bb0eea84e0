"""Compiled training programs: the training step written once, for one model or a population.

`train_step` is the whole update of one member (a compiled Keras model), a pure function
over Keras' stateless API that computes what Keras' own trainers compute in `fit`:

```python
y_pred, non_trainable, losses = model.stateless_call(trainable, non_trainable, x, training=True, return_losses=True)
loss = compiled loss(y, y_pred) + sum(losses)              # the model's loss plus its penalties (weight decay)
grads = d optimizer.scale_loss(loss) / d trainable         # loss scaling (mixed precision)
trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads, trainable)
metrics_variables = loss tracker and compiled metrics updated with (loss, y, y_pred)
```

`test_step` is the same forward pass in inference mode (no update), `metric_results` reads
the metrics out of their variables: the logs `fit` reports, "loss", "accuracy", ...

Each backend contributes only its jit, gradient, vectorizing map and loop (`_JaxBackend`,
`_TensorFlowBackend`, `_TorchBackend`): `jax.jit` / `tf.function` / a traced `torch.fx` graph,
`jax.value_and_grad` / `tf.GradientTape` / `torch.func.grad`, `jax.vmap` /
`tf.vectorized_map` / `torch.func.vmap`, `lax.fori_loop` / `tf.while_loop` / a Python loop.

Members (a model and its optimizer) that share an `architecture` form a *group*: their
variables are stacked along a new first axis and one vectorized program trains them all
(batched matrix products). A group of one is called directly. A `Program` runs several
groups side by side in one compiled call: the labs' variants of different structure are
groups of one (the fused per-variant loop), variants or trials that share an architecture
one group each (a population).

Per-member hyperparameters are inputs of the compiled program, not constants baked into it,
so one compilation serves every population of the same architecture: the learning rate is an
optimizer variable (it travels with the state), and the attributes in `TUNABLE` (weight-decay
lambdas, dropout rates, momentum, ...) are bound to the member's value while the program is
traced. Every member keeps its own state: initial weights, minibatch order (its own stream
of minibatch rows, or the stream it shares with the other variants of a lab), dropout masks
(its layers' seed-generator state); members do not interact, so a member whose loss turns
NaN does not disturb the others.
"""

import collections
import contextlib
import json
import os

import keras
import numpy as np
from keras import ops

from coursekit import keras_internals, optimizers
from coursekit.layers import Dropout
from coursekit.regularizers import WeightDecay

# (class, attribute): per-member hyperparameters bound as inputs of the compiled program. A value
# of 0 is structural instead (no dropout, no decay): such members form a group of their own.
TUNABLE = (
    (WeightDecay, "lam"),
    (keras.regularizers.L2, "l2"),
    (keras.regularizers.L1, "l1"),
    (Dropout, "rate"),
    (keras.layers.Dropout, "rate"),
    (optimizers.Momentum, "momentum"),
    (optimizers.RMSprop, "rho"),
    (keras.optimizers.RMSprop, "rho"),
    (optimizers.Adam, "beta_1"),
    (optimizers.Adam, "beta_2"),
    (keras.optimizers.Adam, "beta_1"),
    (keras.optimizers.Adam, "beta_2"),
)
DROPOUTS = (Dropout, keras.layers.Dropout)  # their masks vectorize and trace on PyTorch too (`seeded_draws`)
_TUNED = float("nan")  # what `architecture` sees of a nonzero tunable value (configs may cast it to float)


def tunables(model, optimizer):
    """The (object, attribute) pairs of `TUNABLE` in a model and its optimizer whose value is nonzero, in a fixed order."""
    found, seen = [], set()
    for obj in [*_sublayers(model), *_regularizers(_sublayers(model)), optimizer]:
        for cls, attribute in TUNABLE:
            if isinstance(obj, cls) and getattr(obj, attribute) and (id(obj), attribute) not in seen:
                seen.add((id(obj), attribute))
                found.append((obj, attribute))
    return found


def _sublayers(model):
    layers = []
    for layer in getattr(model, "layers", []):
        layers += [layer, *_sublayers(layer)]
    return layers


def _regularizers(layers):
    """The regularizers the layers hold (as `kernel_regularizer` and the like), each once."""
    found = {}
    for layer in layers:
        for value in vars(layer).values():
            if isinstance(value, keras.regularizers.Regularizer):
                found.setdefault(id(value), value)
    return list(found.values())


@contextlib.contextmanager
def bound(pairs, values):
    """Set each `(object, attribute)` in `pairs` to the matching entry of `values`, restoring them after.

    A Keras `Dropout` whose rate is bound to a tensor calls through
    `keras_internals.tensor_rate_dropout` meanwhile (its own `call` tests `rate > 0` in Python).
    """
    previous = [getattr(obj, attribute) for obj, attribute in pairs]
    patched = [obj for obj, _ in pairs if type(obj) is keras.layers.Dropout]
    try:
        for (obj, attribute), value in zip(pairs, values):
            setattr(obj, attribute, value)
        for layer in patched:
            layer.call = keras_internals.tensor_rate_dropout(layer)
        yield
    finally:
        for layer in patched:
            del layer.call
        for (obj, attribute), value in zip(pairs, previous):
            setattr(obj, attribute, value)


def architecture(model, optimizer, tuned=True):
    """A key equal for two members exactly when one compiled program can train both.

    It is the models' and optimizers' configs, the compile configuration (loss, metrics) and
    the variable shapes, without what lives in the state: initializers and seeds (initial
    values) and the learning rate (an optimizer variable); with `tuned=True`, without the
    nonzero values of `TUNABLE` attributes either (inputs of the program). Names do not count
    either: an optimizer's, and a `Sequential` model's layer names (models and optimizers
    built in a loop get new generated names). On PyTorch a model that draws random numbers other
    than dropout's (noise layers) is a group of its own: `torch.func.vmap` cannot draw from
    Keras' seeded generators (dropout's draws go through `keras_internals.seeded_draws`).
    """
    pairs = tunables(model, optimizer) if tuned else []
    with bound(pairs, [_TUNED] * len(pairs)):
        model_config, optimizer_config = model.get_config(), optimizer.get_config()
    optimizer_config = {**optimizer_config, "name": None}  # unnamed optimizers get unique names, as Keras' do
    if isinstance(model, keras.Sequential):  # layers wired in order: their (generated) names do not matter
        layers = [{**layer, "config": {**layer["config"], "name": None}} for layer in model_config["layers"]]
        model_config = {**model_config, "name": None, "layers": layers}
    compile_config = {k: v for k, v in (model.get_compile_config() or {}).items() if k != "optimizer"}
    configs = [type(model).__name__, model_config, type(optimizer).__name__, optimizer_config, compile_config]
    shapes = [(tuple(v.shape), str(v.dtype)) for v in [*model.variables, *optimizer.variables]]
    alone = id(model) if keras.backend.backend() == "torch" and draws_random_numbers(model, DROPOUTS) else None
    return json.dumps([_structure(configs), shapes, alone], sort_keys=True, default=str)


def _structure(config):
    """`config` without seeds, initializers and a constant learning rate (they are state, not structure)."""
    if isinstance(config, dict):
        return {
            key: _structure(value)
            for key, value in config.items()
            if key != "seed"
            and not key.endswith("_initializer")
            and not (key == "learning_rate" and isinstance(value, (int, float)))
        }
    if isinstance(config, (list, tuple)):
        return [_structure(value) for value in config]
    return config


# ---------------------------------------------------------------------------------------------
# The steps of one member: pure functions of its state
# ---------------------------------------------------------------------------------------------


def train_step(template, state, hparams, x, y):
    """One update of one member (pure): returns `(new_state, loss)`.

    `template` is `(model, optimizer, tunable pairs)` of the member's architecture; `state` is
    `(trainable, non_trainable, optimizer_variables, metrics_variables)` (lists of tensors),
    `hparams` the member's values of the tunable pairs. The loss is the model's compiled loss
    plus its penalties, as `fit` computes it; its gradient is taken of the optimizer's scaled
    loss (loss scaling); the metrics variables are updated with the loss and the predictions.
    """
    model, optimizer, pairs = template
    trainable, non_trainable, optimizer_variables, metrics_variables = state
    backend = _backend()

    def scaled_loss(trainable):
        y_pred, new_non_trainable, losses = model.stateless_call(
            trainable, non_trainable, x, training=True, return_losses=True
        )
        loss, new_non_trainable, new_metrics = keras_internals.compute_loss(
            model, trainable, new_non_trainable, metrics_variables, x, y, y_pred, losses, training=True
        )
        with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_variables))):
            scaled = optimizer.scale_loss(loss)
        return scaled, (loss, y_pred, new_non_trainable, new_metrics)

    with bound(pairs, [hparams[i] for i in range(len(pairs))]):
        (loss, y_pred, non_trainable, metrics_variables), grads = backend.value_and_grad(scaled_loss)(trainable)
        trainable, optimizer_variables = backend.stateless_apply(optimizer, optimizer_variables, grads, trainable)
        metrics_variables = keras_internals.update_metrics(model, metrics_variables, loss, x, y, y_pred)
    return [list(trainable), list(non_trainable), list(optimizer_variables), list(metrics_variables)], loss


def test_step(template, state, hparams, x, y):
    """The metrics variables of one member after one batch in inference mode (pure): `evaluate`'s step."""
    model, _, pairs = template
    trainable, non_trainable, _, metrics_variables = state
    with bound(pairs, [hparams[i] for i in range(len(pairs))]):
        y_pred, non_trainable, losses = model.stateless_call(
            trainable, non_trainable, x, training=False, return_losses=True
        )
        loss, _, metrics_variables = keras_internals.compute_loss(
            model, trainable, non_trainable, metrics_variables, x, y, y_pred, losses, training=False
        )
        return keras_internals.update_metrics(model, metrics_variables, loss, x, y, y_pred)


def metric_results(template, metrics_variables):
    """`{name: scalar}`: what `fit` logs from these metrics variables ("loss", "accuracy", ...)."""
    return keras_internals.metric_results(template[0], metrics_variables)


def correct_count(template, state, hparams, x, y):
    """How many rows of `x` one member classifies as `y` (inference mode), an int32 scalar.

    The predicted class is the first index of the largest logit, as `np.argmax`, computed as
    an integer argmax of `logits == max(logits)` (the backends' float argmax differ in how
    they treat -0.0, and TensorFlow's cannot be vectorized).
    """
    model, _, pairs = template
    trainable, non_trainable, _, _ = state
    with bound(pairs, [hparams[i] for i in range(len(pairs))]):
        logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
    is_max = ops.cast(ops.equal(logits, ops.max(logits, axis=-1, keepdims=True)), "int32")
    predicted = ops.cast(ops.argmax(is_max, axis=-1), "int32")
    return ops.sum(ops.cast(ops.equal(predicted, ops.cast(y, "int32")), "int32"))


# ---------------------------------------------------------------------------------------------
# Programs: the steps of every member of every group, compiled together
# ---------------------------------------------------------------------------------------------


class Program:
    """Compiled training and evaluation of several groups of members.

    Two entry points, over the same compiled pieces:

    - `train(states, hparams, x, y, indices, steps, eval_sets)` (the labs): `steps` updates,
      `indices` being `(length, streams, batch)`, the minibatch rows of each stream of batches
      (the rows past `steps` are padding: one compilation serves every number of steps up to
      `length`); member i trains on stream `streams[i]` (the labs' variants share one,
      gathered once per step; a search's trials have one each). Then, for each `(x, y)` of
      `eval_sets`, each member's count of correct predictions (inference mode). Returns the
      new states, the losses (their first `steps` rows, `(., members)`) and the counts
      `[(members,) per eval set]`.
    - `epoch(states, hparams, reset, x, y, indices, tail, eval_sets)` (the tuner, as `fit`):
      the metrics reset to `reset`, every full batch of `indices` and the last partial batch
      `tail` (`(streams, rows)`, or None), the training logs; then each eval set, given as
      `(x batches, y batches, x tail, y tail)`, evaluated batch by batch in inference mode,
      its logs. Returns the new states, the losses `(batches, members)`, the training logs
      `{name: (members,)}` and one such dict per eval set: one transfer to the host per epoch.

    Where the loop over steps runs (`host_loop`): by default the whole chunk (or epoch) is one
    compiled program with the loop inside (`lax.fori_loop`, `tf.while_loop`), so that tiny
    steps do not wait on Python, except for a convnet on a CPU: there a Python loop calls one
    compiled step after another, without a transfer between them, because XLA's and
    TensorFlow's CPU code ran a convnet's step inside a compiled loop up to 5x slower than the
    same step compiled on its own (an MLP's ran faster inside it: the chapter's search, 40
    trials, 22.3 s against 26.3 s on TensorFlow, 20.2 against 22.9 s on JAX). On PyTorch every
    loop is Python's, over traced steps. COURSEKIT_LOOPS=host|device overrides.

    States are per group `(trainable, non_trainable, optimizer_variables, metrics_variables)`
    with a leading member axis. `templates` hold one member of each group, whose Keras objects
    are traced. `traces` counts how often Python traced a compiled piece (compilations on TF
    and JAX, `torch.fx` traces on PyTorch, plus every call of a piece PyTorch runs eagerly).

    On TensorFlow, `xla=True` compiles the `tf.function` with XLA too (JAX always does): it
    fuses the elementwise work of weight decay and the update rule, 10-15% of a
    population's time here. `Engine` asks for it only for populations whose models draw no
    random numbers: XLA's random-number kernels differ from TensorFlow's own, and a trial
    with dropout must get the masks it gets when trained alone.
    """

    def __init__(self, templates, sizes, streams, xla=False):
        self.templates, self.sizes, self.streams = templates, sizes, streams
        self.traces, self.latest = 0, None
        backend = _backend()
        convnet = any(_convnet(template) for template in templates)
        self.host_loop = backend.host_loop == "host" or (backend.host_loop == "cpu" and convnet)
        if self.host_loop:  # a Python loop over compiled steps (a convnet on the CPU: see above)
            self._step = backend.jit(self._traced(self._one_step), donate_states=True, xla=xla)
            self._test_step = backend.jit(self._traced(self._test), xla=xla)
            self._results_of = backend.jit(self._traced(self._results))
            self._counts = backend.jit(self._traced(self._count_correct), xla=xla)
            self.train, self.epoch = self._train_on_host, self._epoch_on_host
        else:  # one compiled program per call, its loops inside (a GPU)
            # Steps and counts are compiled functions of their own, which the calls compose: each
            # is traced once, with or without evaluation after the steps (TensorFlow traces slowly).
            self._steps, self._counts = backend.jit(self._scan_steps), backend.jit(self._count_correct)
            self.train = backend.jit(self._traced(self._train), donate_states=True, xla=xla)
            self.epoch = backend.jit(self._traced(self._epoch), donate_states=True, xla=xla)

    def _traced(self, function):
        def traced(*args):
            self.traces += 1
            _STATS["traces"] += 1
            return function(*args)

        return traced

    def _per_group(self, function, states, hparams, per_stream, shared):
        """Apply `function(template, state, hparams, *per_stream, *shared)` to every member of every group.

        Each member gets its stream's row of the `per_stream` arrays.
        """
        backend, outputs, start = _backend(), [], 0
        for template, size, state, values in zip(self.templates, self.sizes, states, hparams):
            member_args = [_rows(arg, self.streams[start : start + size]) for arg in per_stream]
            start += size

            def member(state, values, *args, template=template):
                return function(template, state, values, *args, *shared)

            if size == 1:  # called directly: a lone model computes exactly as it would on its own
                out = member(*_nest_map(lambda a: a[0], (state, values, *member_args)))
                outputs.append(_nest_map(lambda a: ops.expand_dims(a, 0), out))
            else:
                outputs.append(backend.vmap(member, sequential=_sequential(template))(state, values, *member_args))
        return outputs

    # -- the pieces ----------------------------------------------------------------------------

    def _one_step(self, states, hparams, x, y, step_indices):
        """One update of every member; `step_indices` `(streams, batch)` are the rows of each stream's batch."""
        backend = _backend()
        batches = [_gather(backend, x, step_indices), _gather(backend, y, step_indices)]
        outputs = self._per_group(train_step, states, hparams, batches, [])
        return [state for state, _ in outputs], ops.concatenate([loss for _, loss in outputs], axis=0)

    def _count_correct(self, states, hparams, x, y):
        return ops.concatenate(self._per_group(correct_count, states, hparams, [], [x, y]), axis=0)

    def _test(self, states, hparams, x, y):
        metrics = self._per_group(test_step, states, hparams, [], [x, y])
        return [[*state[:3], list(new)] for state, new in zip(states, metrics)]

    def _results(self, states):
        per_group = [
            _vmapped(lambda m, template=template: metric_results(template, m), size)(state[3])
            for template, size, state in zip(self.templates, self.sizes, states)
        ]
        return {name: ops.concatenate([logs[name] for logs in per_group], axis=0) for name in per_group[0]}

    @staticmethod
    def _reset(states, reset):
        """`states` with their metrics variables as `reset` (host arrays: fresh device buffers each time)."""
        return [[*state[:3], [ops.convert_to_tensor(a) for a in fresh]] for state, fresh in zip(states, reset)]

    # -- one compiled program per call (device loops) -----------------------------------------

    def _train(self, states, hparams, x, y, indices, steps, eval_sets):
        states, losses = self._steps(states, hparams, x, y, indices, steps)
        return states, losses, [self._counts(states, hparams, eval_x, eval_y) for eval_x, eval_y in eval_sets]

    def _scan_steps(self, states, hparams, x, y, indices, steps):
        def one_step(states, step_indices):  # step_indices: (streams, batch)
            return self._one_step(states, hparams, x, y, step_indices)

        return _backend().loop(one_step, states, indices, steps, width=sum(self.sizes))

    def _epoch(self, states, hparams, reset, x, y, indices, tail, eval_sets):
        backend, width = _backend(), sum(self.sizes)
        states = [[*state[:3], list(fresh)] for state, fresh in zip(states, reset)]
        losses = ops.zeros((0, width), "float32")
        if indices.shape[0]:  # the full batches (none when the data is smaller than a batch)
            states, losses = backend.loop(
                lambda s, rows: self._one_step(s, hparams, x, y, rows), states, indices, indices.shape[0], width
            )
        if tail is not None:
            states, tail_loss = self._one_step(states, hparams, x, y, tail)
            losses = ops.concatenate([losses, ops.cast(ops.expand_dims(tail_loss, 0), "float32")], axis=0)
        logs = self._results(states)
        evaluations = []
        for x_batches, y_batches, x_tail, y_tail in eval_sets:
            scores = [[*state[:3], list(fresh)] for state, fresh in zip(states, reset)]

            def evaluate(scores, batch, x_batches=x_batches, y_batches=y_batches):
                return self._test(scores, hparams, x_batches[batch], y_batches[batch]), ops.zeros((1,))

            if x_batches.shape[0]:
                batches = backend.arange(x_batches.shape[0])
                scores, _ = backend.loop(evaluate, scores, batches, x_batches.shape[0], width=1)
            if x_tail is not None:
                scores = self._test(scores, hparams, x_tail, y_tail)
            evaluations.append(self._results(scores))
        return states, losses, logs, evaluations

    # -- a Python loop over compiled steps (host loops) ---------------------------------------

    def _train_on_host(self, states, hparams, x, y, indices, steps, eval_sets):
        losses = []
        for i in range(int(steps)):
            states, loss = self._step(states, hparams, x, y, ops.convert_to_tensor(indices[i]))
            self.latest = states  # what the engine keeps if a later step fails
            losses.append(loss)
        counts = [self._counts(states, hparams, eval_x, eval_y) for eval_x, eval_y in eval_sets]
        return states, _stack_host(losses, sum(self.sizes)), counts

    def _epoch_on_host(self, states, hparams, reset, x, y, indices, tail, eval_sets):
        states, losses = self._reset(states, reset), []
        for rows in [*indices, *([] if tail is None else [tail])]:
            states, loss = self._step(states, hparams, x, y, ops.convert_to_tensor(rows))
            self.latest = states
            losses.append(loss)
        logs = self._results_of(states)
        evaluations = []
        for x_batches, y_batches, x_tail, y_tail in eval_sets:
            scores = self._reset(states, reset)
            for batch in range(x_batches.shape[0]):
                scores = self._test_step(scores, hparams, x_batches[batch], y_batches[batch])
            if x_tail is not None:
                scores = self._test_step(scores, hparams, x_tail, y_tail)
            evaluations.append(self._results_of(scores))
        return states, _stack_host(losses, sum(self.sizes)), logs, evaluations


def _stack_host(losses, width):
    """Per-step losses (device scalars per member) as one `(steps, width)` float32 host array."""
    if not losses:
        return np.zeros((0, width), "float32")
    return np.stack([np.asarray(ops.convert_to_numpy(loss), dtype="float32") for loss in losses])


def _vmapped(function, size):
    """`function` over the leading member axis: vectorized, or called directly for a group of one."""
    if size > 1:
        return _backend().vmap(function)
    return lambda arg: _nest_map(lambda a: ops.expand_dims(a, 0), function(_nest_map(lambda a: a[0], arg)))


def _gather(backend, data, rows):
    """`data[rows]` for an array or a nest of arrays (a model of several inputs)."""
    return _nest_map(lambda array: backend.gather(array, rows), data)


def _rows(array, rows):
    """`array[rows]` for a tuple of row numbers: a slice where they are consecutive."""
    if rows == tuple(range(rows[0], rows[0] + len(rows))):
        return array[rows[0] : rows[0] + len(rows)]
    return ops.take(array, np.asarray(rows, dtype="int32"), axis=0)


def _nest_map(function, structure):
    return keras.tree.map_structure(function, structure)


class Engine:
    """Trains `variants` (models with their optimizers) in one compiled program per chunk of steps.

    `group=True` puts variants that share an `architecture` into one vectorized group (a
    population) whose `TUNABLE` hyperparameters are inputs; programs are cached by
    architecture when `cache` (the tuner's populations: the next population of the same
    architecture and size reuses the compiled program). `group=False` keeps each variant a
    group of its own with its hyperparameters as constants (the per-variant loop inside one
    compiled step: every variant computes exactly as it would alone). A variant's model that
    is not compiled is compiled with its optimizer and the course's classification loss.
    `finish()` writes the trained state back into the Keras variables (call it in a
    `finally`); `finalize()` then lets each optimizer finalize its variables as `fit` does
    (EMA writes its averaged weights back).
    """

    def __init__(self, variants, *, group=True, steps_per_call=50, streams=None, cache=False, sample=None, keys=None):
        self.variants, self.tuned, self.steps_per_call = list(variants), group, int(steps_per_call)
        for v in self.variants:
            _prepare(v, sample)
        if keys is None:  # (a caller that knows them already passes them: a model's config is slow to serialize)
            keys = [architecture(v.model, v.optimizer, tuned=group) for v in self.variants]
        if group:
            by_key = collections.defaultdict(list)
            for index, key in enumerate(keys):
                by_key[key].append(index)
            self.groups = list(by_key.values())
        else:
            self.groups = [[index] for index in range(len(self.variants))]
        self.order = [index for members in self.groups for index in members]  # program column -> variant
        streams = list(range(len(self.variants))) if streams is None else list(streams)
        self.streams = tuple(streams[index] for index in self.order)
        xla = group and not any(draws_random_numbers(v.model) for v in self.variants)
        sizes = [len(m) for m in self.groups]
        self.program = _program([keys[m[0]] for m in self.groups], sizes, self.streams, self._templates, xla, cache)
        self.hparams = [self._stacked_hparams(members) for members in self.groups]
        self.states = [self._stacked_state(members) for members in self.groups]
        self._host = {}  # group -> its state on the host, while it is current
        self.reset = [self._stacked_reset(members) for members in self.groups]

    def _templates(self):
        templates = []
        for members in self.groups:
            v = self.variants[members[0]]
            templates.append((v.model, v.optimizer, self._tunables(v)))
        return templates

    def _variables(self, variant):
        model, optimizer = variant.model, variant.optimizer
        return [model.trainable_variables, model.non_trainable_variables, optimizer.variables, model.metrics_variables]

    def _stacked_state(self, members):
        """Each variable stacked over `members`, stacked on the host and sent to the device once."""
        parts = zip(*(self._variables(self.variants[m]) for m in members))
        return [[ops.convert_to_tensor(np.stack([_host(v) for v in same])) for same in zip(*part)] for part in parts]

    def _stacked_reset(self, members):
        """The metrics variables of each member as `reset_metrics` leaves them (stacked)."""
        fresh = []
        for m in members:
            model = self.variants[m].model
            values = [_host(v).copy() for v in model.metrics_variables]
            model.reset_metrics()
            fresh.append([_host(v).copy() for v in model.metrics_variables])
            for variable, value in zip(model.metrics_variables, values):
                variable.assign(value)
        return [np.stack(same) for same in zip(*fresh)]

    def _tunables(self, variant):
        return tunables(variant.model, variant.optimizer) if self.tuned else []

    def _stacked_hparams(self, members):
        values = [[float(getattr(obj, name)) for obj, name in self._tunables(self.variants[m])] for m in members]
        return ops.convert_to_tensor(np.asarray(values, dtype="float32").reshape(len(members), -1))

    def set_data(self, x, y):
        self.data = (to_tensor(x), to_tensor(y))

    def run(self, indices, eval_sets=()):
        """Train `indices.shape[1]` steps, then count each variant's correct predictions on each `(x, y)`.

        `indices` is `(streams, steps, batch)`, the rows of each stream of minibatches
        (variant i draws from stream `streams[i]`), at most `steps_per_call` steps. Returns
        the losses `(steps, variants)` and the counts, one array `(variants,)` per eval
        set, in variant order.
        """
        streams, steps, batch = indices.shape
        if steps > self.steps_per_call:
            raise ValueError(f"{steps} steps in one call; this engine runs at most {self.steps_per_call}")
        padded = np.zeros((self.steps_per_call, streams, batch), dtype="int32")
        padded[:steps] = np.asarray(indices, dtype="int32").swapaxes(0, 1)
        eval_sets = [(to_tensor(x), to_tensor(y)) for x, y in eval_sets]
        indices = padded if self.program.host_loop else ops.convert_to_tensor(padded)
        _STATS["steps"] += steps
        losses, counts = self._call(self.program.train, self.hparams, *self.data, indices, np.int32(steps), eval_sets)
        losses = self._in_variant_order(np.asarray(ops.convert_to_numpy(losses), dtype=np.float64)[:steps])
        return losses, [self._in_variant_order(np.asarray(ops.convert_to_numpy(c))) for c in counts]

    def run_epoch(self, indices, tail, eval_batches=()):
        """One epoch as `fit` trains and validates it; returns `(losses, logs, [eval logs])` in variant order.

        `indices` `(streams, batches, batch)` are the rows of each stream's full batches,
        `tail` `(streams, rows)` those of its last partial batch (or None); `eval_batches` are
        eval sets as `batched` returns them, each evaluated batch by batch after the epoch.
        Logs are `{name: (variants,) float64}`.
        """
        indices = np.asarray(indices, dtype="int32").swapaxes(0, 1)
        tail = None if tail is None or tail.shape[-1] == 0 else np.asarray(tail, dtype="int32")
        _STATS["steps"] += len(indices) + (tail is not None)
        if not self.program.host_loop:
            indices, tail = ops.convert_to_tensor(indices), None if tail is None else ops.convert_to_tensor(tail)
        losses, logs, evaluations = self._call(
            self.program.epoch, self.hparams, self.reset, *self.data, indices, tail, list(eval_batches)
        )
        losses = self._in_variant_order(np.asarray(ops.convert_to_numpy(losses), dtype=np.float64))
        return losses, self._logs(logs), [self._logs(e) for e in evaluations]

    def _call(self, function, *args):
        """`function(states, *args)`; the states it returns replace the engine's, kept even after an error.

        After an error the engine keeps the last states that are still alive: those after the
        last completed step of a Python loop over steps, else those before the call.
        """
        self._host, self.program.latest = {}, None
        states, self.states = self.states, None  # donated to the call: never kept once consumed
        _STATS["calls"] += 1
        try:
            states, *outputs = function(states, *args)
        except BaseException:
            candidates = [self.program.latest, states]
            self.states = next((c for c in candidates if c is not None and _alive(c)), None)
            raise
        self.states = states
        return outputs

    def _logs(self, logs):
        return {
            name: self._in_variant_order(np.asarray(ops.convert_to_numpy(v), dtype=np.float64))
            for name, v in logs.items()
        }

    def _in_variant_order(self, array):
        out = np.empty_like(array)
        out[..., self.order] = array
        return out

    def _host_state(self, group):
        """The group's stacked state on the host (one transfer per array, kept until the next call)."""
        if self._host.get(group) is None:
            self._host[group] = [[np.asarray(ops.convert_to_numpy(a)) for a in part] for part in self.states[group]]
        return self._host[group]

    def _where(self, index):
        group = next(g for g, members in enumerate(self.groups) if index in members)
        return group, self.groups[group].index(index)

    def member_state(self, index):
        """Variant `index`'s state as NumPy arrays: `[trainable, non_trainable, optimizer_variables]`."""
        group, row = self._where(index)
        return [[a[row].copy() for a in part] for part in self._host_state(group)[:3]]

    def set_member_weights(self, index, trainable, non_trainable):
        """Replace variant `index`'s model weights in the stacked state (EarlyStopping's restore_best_weights)."""
        group, row = self._where(index)
        host = self._host_state(group)
        for part, values in ((0, trainable), (1, non_trainable)):
            for stacked, value in zip(host[part], values):
                stacked[row] = value
            self.states[group][part] = [ops.convert_to_tensor(a) for a in host[part]]

    def finish(self):
        """Write the trained state back into every variant's Keras variables (skipped if it was lost)."""
        if self.states is None:
            return
        for group, members in enumerate(self.groups):
            arrays = self._host_state(group)
            for row, m in enumerate(members):
                for variables, values in zip(self._variables(self.variants[m]), arrays):
                    for variable, value in zip(variables, values):
                        variable.assign(value[row])

    def finalize(self):
        """`optimizer.finalize_variable_values`, as `fit` calls it at the end of training."""
        for v in self.variants:
            v.optimizer.finalize_variable_values(v.model.trainable_variables)


def _prepare(variant, sample):
    """Compile an uncompiled lab model (its optimizer, the course's loss) and build what `fit` builds first.

    `sample` is one `(x, y)` batch of the training data (the shapes the model and its
    compiled metrics are built for).
    """
    model, optimizer = variant.model, variant.optimizer
    if not getattr(model, "compiled", False):
        from coursekit.models import classification_loss

        model.compile(optimizer=optimizer, loss=classification_loss())
    if sample is not None:
        keras_internals.build_for_training(model, *sample)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)


def _host(variable):
    """A Keras variable's value as a NumPy array."""
    return np.asarray(ops.convert_to_numpy(variable.value))


def to_tensor(data):
    """A nest of arrays as backend tensors (on the device)."""
    return _nest_map(ops.convert_to_tensor, data)


def batched(x, y, batch_size):
    """`(x batches, y batches, x tail, y tail)` of an eval set, on the device (the tails None if there are none)."""
    n = len(keras.tree.flatten(y)[0])
    full = n // batch_size

    def split(data):
        head = _nest_map(lambda a: ops.reshape(a[: full * batch_size], (full, batch_size, *a.shape[1:])), data)
        tail = _nest_map(lambda a: a[full * batch_size :], data) if n % batch_size else None
        return head, tail

    (x_head, x_tail), (y_head, y_tail) = split(to_tensor(x)), split(to_tensor(y))
    return x_head, y_head, x_tail, y_tail


CONVOLUTIONS = tuple(
    getattr(keras.layers, name)
    for name in (
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    )
)  # fmt: skip


def _sequential(template):
    """Whether a population of this template trains its members one after another inside the program.

    On JAX with the CPU, a vectorized convolution (one kernel per member) becomes a grouped
    convolution, which XLA's CPU code runs about 2 times slower than the members'
    convolutions one by one, and `lax.map` (a compiled loop over the members) 3 times slower;
    there the members of a convnet are unrolled, one after another, in the compiled step (its
    compilation grows with K). Elsewhere (GPUs, TensorFlow, PyTorch) they are vectorized.
    """
    return _backend().sequential_convolutions and _convnet(template)


def _convnet(template):
    """Whether the template's model has a convolution layer."""
    return any(isinstance(layer, CONVOLUTIONS) for layer in _sublayers(template[0]))


def draws_random_numbers(model, besides=()):
    """Whether a layer of `model` (not one of the classes in `besides`) owns a `keras.random.SeedGenerator`."""
    return any(
        isinstance(value, keras.random.SeedGenerator)
        for layer in _sublayers(model)
        if type(layer) not in besides
        for value in vars(layer).values()
    )


def _alive(states):
    """False when a JAX call consumed (donated) the state arrays before failing."""
    return not any(getattr(a, "is_deleted", lambda: False)() for a in keras.tree.flatten(states))


_PROGRAMS = collections.OrderedDict()  # population programs, the most recently used last
_CACHE_SIZE = 8
_STATS = collections.Counter()  # what the engine did in this process (benchmarks/program_shape.py)


def stats():
    """This process's counts: "programs" built, "traces" of their compiled pieces, engine "calls" (one
    transfer of results to the host each), training "steps" and, on PyTorch, "eager" pieces (that
    could not be traced)."""
    return dict(_STATS)


def _program(keys, sizes, streams, templates, xla, cache):
    """The `Program` for these architectures and group sizes, from the cache if `cache` (built from `templates()` if new).

    Populations are cached: the next population of a search reuses the compiled program.
    The labs' fused programs are not (each lab builds its own, and a cached one would keep
    its models and graphs alive through the next labs).
    """
    key = (keras.backend.backend(), tuple(keys), tuple(sizes), streams, xla)
    if not cache:
        _STATS["programs"] += 1
        return Program(templates(), sizes, streams, xla=xla)
    if key not in _PROGRAMS:
        _STATS["programs"] += 1
        _PROGRAMS[key] = Program(templates(), sizes, streams, xla=xla)
        while len(_PROGRAMS) > _CACHE_SIZE:
            _PROGRAMS.popitem(last=False)
    _PROGRAMS.move_to_end(key)
    return _PROGRAMS[key]


# ---------------------------------------------------------------------------------------------
# The backends: jit, gradient, vectorizing map, loop and the optimizer's stateless apply.
# ---------------------------------------------------------------------------------------------


class _JaxBackend:
    def __init__(self):
        import jax

        self.jax = jax
        self.host_loop = _host_loop(jax.default_backend() == "cpu")
        self.sequential_convolutions = jax.default_backend() == "cpu"

    def jit(self, function, donate_states=False, xla=True):
        return self.jax.jit(function, donate_argnums=(0,) if donate_states else ())

    def value_and_grad(self, function):
        """`function(params) -> (value, aux)` to `params -> (aux, grads)`."""
        grad_fn = self.jax.value_and_grad(function, has_aux=True)

        def call(params):
            (_, aux), grads = grad_fn(params)
            return aux, grads

        return call

    def vmap(self, function, sequential=False):
        if sequential:  # one member after another (`_sequential`)
            return _unrolled(function)
        return self.jax.vmap(function)

    def loop(self, step, carry, xs, n, width):
        """`carry, y = step(carry, xs[i])` for i < n (traced: any n up to len(xs)); returns carry and the y's.

        The y's are `(width,)` float32 rows of a `(len(xs), width)` array; rows from n on are 0.
        """
        jnp = self.jax.numpy

        def body(i, state):
            carry, ys = state
            carry, y = step(carry, xs[i])
            return carry, ys.at[i].set(y.astype("float32"))

        return self.jax.lax.fori_loop(0, n, body, (carry, jnp.zeros((xs.shape[0], width), "float32")))

    def arange(self, n):
        return self.jax.numpy.arange(n)

    def gather(self, x, rows):
        return x[rows]  # `ops.take` adds out-of-range handling, 2x slower here

    def stateless_apply(self, optimizer, optimizer_variables, grads, trainable):
        return optimizer.stateless_apply(optimizer_variables, grads, trainable)


class _TensorFlowBackend:
    sequential_convolutions = False

    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self.host_loop = _host_loop(not tf.config.list_logical_devices("GPU"))

    def jit(self, function, donate_states=False, xla=False):
        return self.tf.function(function, reduce_retracing=True, jit_compile=xla, autograph=False)

    def value_and_grad(self, function):
        tf = self.tf

        def call(params):
            with tf.GradientTape() as tape:
                tape.watch(params)
                value, aux = function(params)
            return aux, tape.gradient(value, params)

        return call

    def vmap(self, function, sequential=False):
        def mapped(*args):
            # pfor has no vectorized form of the stateless random ops with one seed per member
            # (dropout masks): it loops over the members for those, and says so once per trace.
            with _without_log_message(self.tf.get_logger(), "Using a while_loop for converting"):
                return self.tf.vectorized_map(lambda args: function(*args), args, fallback_to_while_loop=True)

        return mapped

    def loop(self, step, carry, xs, n, width):
        """`carry, y = step(carry, xs[i])` for i < n; returns carry and the y's stacked, `(n, width)` float32."""
        tf = self.tf
        outputs = tf.TensorArray(tf.float32, size=n)

        def body(i, carry, outputs):
            carry, y = step(carry, xs[i])
            return i + 1, carry, outputs.write(i, tf.cast(y, tf.float32))

        _, carry, outputs = tf.while_loop(lambda i, *_: i < n, body, (tf.constant(0), carry, outputs))
        return carry, outputs.stack()

    def arange(self, n):
        return self.tf.range(n)

    def gather(self, x, rows):
        return self.tf.gather(x, rows)

    def stateless_apply(self, optimizer, optimizer_variables, grads, trainable):
        return keras_internals.base_stateless_apply(optimizer, optimizer_variables, grads, trainable)


class _TorchBackend:
    """PyTorch: `torch.func` for gradients and populations; `jit` traces each compiled piece into a
    `torch.fx` graph (`_TorchGraph`), so a step costs its operations, not Keras' Python around them."""

    sequential_convolutions = False
    host_loop = "host"  # a Python loop over the traced steps

    def __init__(self):
        import torch

        self.torch = torch

    def jit(self, function, donate_states=False, xla=False):
        return _TorchGraph(function)

    def value_and_grad(self, function):
        grad_fn = self.torch.func.grad(function, has_aux=True)

        def call(params):
            grads, aux = grad_fn(params)
            return aux, grads

        return call

    def vmap(self, function, sequential=False):
        return self.torch.func.vmap(function, randomness="error")

    def loop(self, step, carry, xs, n, width):
        ys = self.torch.zeros((len(xs), width), dtype=self.torch.float32)
        for i in range(int(n)):
            carry, y = step(carry, xs[i])
            ys[i] = y.detach().float()
        return carry, ys

    def arange(self, n):
        return range(int(n))

    def gather(self, x, rows):
        return x[rows.long()]

    def stateless_apply(self, optimizer, optimizer_variables, grads, trainable):
        return keras_internals.base_stateless_apply(optimizer, optimizer_variables, grads, trainable)


class _TorchGraph:
    """`function` traced into a `torch.fx` graph once per signature of its arguments, then replayed.

    The signature is the nest of the arguments with their tensors' shapes and dtypes. The trace
    (`make_fx` on fake tensors: shapes and dtypes, no values) runs Keras' Python once, as
    `jax.jit` does, under `torch.no_grad()` (`torch.func.grad` still takes the gradients inside).
    A function whose Python reads a tensor's value (an `if` on it, `int(...)`: Keras' seeded
    random numbers do, except dropout's, which `keras_internals.seeded_draws` makes traceable)
    raises there instead of freezing a branch into the graph: it then runs eagerly, every call,
    counted in `stats()["eager"]`. Outputs are nests of tensors (lists, tuples, dicts), as the
    `Program`'s pieces return.
    """

    def __init__(self, function):
        self.function, self.graphs, self.eager = function, {}, False

    def __call__(self, *args):
        import torch

        with torch.no_grad():
            if not self.eager:
                leaves = []
                structure = _flatten(args, leaves)
                signature = (structure, *((tuple(a.shape), a.dtype) if torch.is_tensor(a) else str(a) for a in leaves))
                if signature not in self.graphs:
                    self.graphs[signature] = self._trace(structure, leaves)  # None when it cannot be traced
                if self.graphs[signature] is not None:
                    graph, outputs = self.graphs[signature]
                    return _unflatten(outputs, iter(graph(*leaves)))
            return self._python(*args)

    def _python(self, *args):
        """`function` itself (at a trace, or eagerly), its dropout draws through `seeded_draws`' op."""
        with keras_internals.seeded_draws():
            return self.function(*args)

    def _trace(self, structure, leaves):
        """`(graph, the outputs' structure)`, or None (and eager from now on) when Python reads a value."""
        from torch.fx.experimental.proxy_tensor import make_fx

        outputs = []

        def flat(*flat_leaves):
            flat_outputs = []
            outputs.append(_flatten(self._python(*_unflatten(structure, iter(flat_leaves))), flat_outputs))
            return flat_outputs

        try:
            graph = make_fx(flat, tracing_mode="fake")(*leaves)
        except Exception:  # Python read a value (Keras' seeded random numbers, a data-dependent branch)
            self.eager = True
            _STATS["eager"] += 1
            return None
        return graph, outputs[-1]


def _flatten(nest, leaves):
    """Append the leaves of `nest` (lists, tuples, dicts in key order) to `leaves`; return its structure.

    The structure is hashable, and `_unflatten(structure, iter(leaves))` rebuilds the nest: a
    replayed graph's arguments and outputs in a few microseconds (`keras.tree` takes about a
    millisecond for a population's state).
    """
    if isinstance(nest, (list, tuple)):
        return type(nest), tuple(_flatten(item, leaves) for item in nest)
    if isinstance(nest, dict):
        return dict, tuple((key, _flatten(nest[key], leaves)) for key in sorted(nest))
    leaves.append(nest)
    return None


def _unflatten(structure, leaves):
    if structure is None:
        return next(leaves)
    kind, items = structure
    if kind is dict:
        return {key: _unflatten(item, leaves) for key, item in items}
    values = [_unflatten(item, leaves) for item in items]
    return kind(*values) if hasattr(kind, "_fields") else kind(values)  # a namedtuple takes its fields


def _unrolled(function):
    """`function` over the leading member axis, one member after another (unrolled in the trace)."""

    def mapped(*args):
        size = keras.tree.flatten(args)[0].shape[0]
        outputs = [function(*_nest_map(lambda a, i=i: a[i], args)) for i in range(size)]
        return keras.tree.map_structure(lambda *values: ops.stack(values), *outputs)

    return mapped


LOOPS_VARIABLE = "COURSEKIT_LOOPS"  # "host" or "device": where the loops over steps run (default: by device)


def _host_loop(on_cpu):
    """Where loops over steps run (`Program`): "host" or "device" as COURSEKIT_LOOPS says, else "cpu" on a CPU
    (a convnet's loop in Python, another model's in the program) and "device" elsewhere."""
    choice = os.environ.get(LOOPS_VARIABLE, "")
    if choice not in ("", "host", "device"):
        raise ValueError(f"{LOOPS_VARIABLE} must be 'host' or 'device'; received {choice!r}")
    return choice or ("cpu" if on_cpu else "device")


@contextlib.contextmanager
def _without_log_message(logger, text):
    """Drop the records of `logger` whose message starts with `text` inside the block."""
    log_filter = _MessageFilter(text)
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


class _MessageFilter:
    def __init__(self, text):
        self.text = text

    def filter(self, record):
        return not str(record.msg).startswith(self.text)


_BACKENDS = {"jax": _JaxBackend, "tensorflow": _TensorFlowBackend, "torch": _TorchBackend}
_INSTANCES = {}


def supported():
    """Whether the active Keras backend has a compiled engine (TensorFlow, JAX, PyTorch)."""
    return keras.backend.backend() in _BACKENDS


def _backend():
    name = keras.backend.backend()
    if name not in _BACKENDS:
        raise ValueError(f"the compiled engine supports TensorFlow, JAX and PyTorch, not {name!r}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _BACKENDS[name]()
    return _INSTANCES[name]
