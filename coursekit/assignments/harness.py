"""The grader's child process: runs a student's components on probes and reports raw measurements.

    python -m coursekit.assignments.harness RESULT_FD FOLDER MODULE < probes.json

It reads the probes (a JSON list) from standard input, loads the student's component file
FOLDER/coursekit/MODULE.py in place of the kit's (`coursekit.implementation`), runs each
probe and writes one JSON line per event to the pipe RESULT_FD:

    {"event": "loaded"}                          the student's module imported
    {"event": "start", "id": ID}                 a probe begins (the parent starts its clock)
    {"event": "result", "id": ID, "ok": true, "values": {name: array}}
    {"event": "result", "id": ID, "ok": false, "error": "...", "not_implemented": bool}
    {"event": "done"}

It decides nothing: no pass, no fail, no score. The parent (`coursekit.assignments.grader`)
compares the measured arrays with `coursekit.reference`, so whatever the student's code
prints, writes or forges, only correct numbers for the parent's probes (the hidden ones are
drawn fresh for every grading) earn points. It ends with `os._exit`, so no `atexit` hook of
the student's code runs after it.
"""

import json
import os
import sys
import traceback

import numpy as np

from coursekit.assignments.wire import decode_tree, encode_tree


def _keras():
    import keras

    return keras


def _component(module, name):
    import importlib

    return getattr(importlib.import_module(f"coursekit.{module}"), name)


# -- one function per probe kind: arguments in, a dict of arrays out ----------------------


def optimizer_steps(class_name, kwargs, start, grads):
    """Apply each step of `grads` with `class_name(**kwargs)`; the parameters after every step."""
    keras = _keras()
    optimizer = _component("optimizers", class_name)(**kwargs)
    variables = [keras.Variable(value) for value in start]
    trajectory = [[] for _ in variables]
    for step in grads:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], variables))
        for history, variable in zip(trajectory, variables):
            history.append(np.array(keras.ops.convert_to_numpy(variable.value)))
    return {f"param_{i}": np.stack(history) for i, history in enumerate(trajectory)}


def optimizer_training(class_name, learning_rate, weights, x, y, epochs, batch_size):
    """Train a 2-layer net from the given weights with `compile` + `fit`; its weights afterwards."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(weights[0].shape[1], activation="relu"),
            keras.layers.Dense(weights[2].shape[1]),
        ]
    )
    model.set_weights(weights)
    model.compile(
        _component("optimizers", class_name)(learning_rate=learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=int(batch_size), epochs=int(epochs), shuffle=False, verbose=0)
    return {f"weight_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}


def initializer_stddev(class_name, shapes):
    """The initializer's `stddev(shape)` for each shape."""
    initializer = _component("initializers", class_name)(seed=1)
    return {
        f"stddev_{i}": np.float64(initializer.stddev(tuple(int(n) for n in shape))) for i, shape in enumerate(shapes)
    }


def initializer_sample(class_name, shape, seed):
    """One draw of the initializer for `shape`."""
    keras = _keras()
    values = _component("initializers", class_name)(seed=int(seed))(tuple(int(n) for n in shape), dtype="float32")
    return {"sample": keras.ops.convert_to_numpy(values)}


def batchnorm(x, gamma, beta, dout, momentum, epsilon, calls):
    """`calls` training calls (outputs, moving statistics after each), an inference call, and, in float64,
    the gradients of sum(y * dout) with respect to x, gamma and beta in training mode."""
    keras = _keras()
    from coursekit.gradcheck import autodiff_gradients
    from coursekit.runtime import float64

    make = _component("layers", "BatchNorm")
    layer = make(momentum=float(momentum), epsilon=float(epsilon))
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    measured = {}
    for call in range(1, int(calls) + 1):
        measured[f"train_output_{call}"] = keras.ops.convert_to_numpy(layer(x, training=True))
        measured[f"moving_mean_{call}"] = keras.ops.convert_to_numpy(layer.moving_mean.value)
        measured[f"moving_variance_{call}"] = keras.ops.convert_to_numpy(layer.moving_variance.value)
    measured["inference_output"] = keras.ops.convert_to_numpy(layer(x, training=False))
    with float64():
        layer = make(momentum=float(momentum), epsilon=float(epsilon))
        layer.build(x.shape)
        layer.gamma.assign(gamma.astype("float64"))
        layer.beta.assign(beta.astype("float64"))
        x_var = keras.Variable(x.astype("float64"))
        grads = autodiff_gradients(
            lambda: keras.ops.sum(keras.ops.multiply(layer(x_var.value, training=True), dout)),
            [x_var, layer.gamma, layer.beta],
        )
    measured.update({"grad_x": grads[0], "grad_gamma": grads[1], "grad_beta": grads[2]})
    return measured


def dropout(x, rate, seed, inverted):
    """Two training calls (the masks should differ) and one inference call."""
    keras = _keras()
    layer = _component("layers", "Dropout")(float(rate), inverted=bool(inverted), seed=int(seed))
    return {
        "train_output_1": keras.ops.convert_to_numpy(layer(x, training=True)),
        "train_output_2": keras.ops.convert_to_numpy(layer(x, training=True)),
        "inference_output": keras.ops.convert_to_numpy(layer(x, training=False)),
    }


def weight_decay(w, lam):
    """The penalty for `w`, and its gradient by autodiff."""
    keras = _keras()
    from coursekit.gradcheck import autodiff_gradients

    regularizer = _component("regularizers", "WeightDecay")(float(lam))
    variable = keras.Variable(w)
    penalty = keras.ops.convert_to_numpy(regularizer(keras.ops.convert_to_tensor(w)))
    [gradient] = autodiff_gradients(lambda: regularizer(variable.value), [variable])
    return {"penalty": np.asarray(penalty, dtype=np.float64), "gradient": gradient}


PROBES = {
    fn.__name__: fn
    for fn in (
        optimizer_steps,
        optimizer_training,
        initializer_stddev,
        initializer_sample,
        batchnorm,
        dropout,
        weight_decay,
    )
}


def describe(error):
    """`Type at file:line: message`, the line being the student's, when it is in the traceback."""
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if "/coursekit/" in f.filename and "assignments" not in f.filename
    ]
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}{where}: {text}"[:500]


def main(argv):
    channel = os.fdopen(int(argv[0]), "w", buffering=1)
    folder, module = argv[1], argv[2]
    probes = json.loads(sys.stdin.read())

    def emit(record):
        channel.write(json.dumps(record, allow_nan=False) + "\n")
        channel.flush()

    from coursekit.implementation import load_components

    load_components(folder, [module])
    emit({"event": "loaded"})
    for probe in probes:
        emit({"event": "start", "id": probe["id"]})
        try:
            values = PROBES[probe["kind"]](**decode_tree(probe["args"]))
            values = {name: np.asarray(value) for name, value in values.items()}
            emit({"event": "result", "id": probe["id"], "ok": True, "values": encode_tree(values)})
        except NotImplementedError as error:
            emit(
                {
                    "event": "result",
                    "id": probe["id"],
                    "ok": False,
                    "error": describe(error),
                    "not_implemented": True,
                }
            )
        except Exception as error:  # the student's code failed: a measurement of its own
            emit(
                {"event": "result", "id": probe["id"], "ok": False, "error": describe(error), "not_implemented": False}
            )
    emit({"event": "done"})
    channel.close()


if __name__ == "__main__":
    status = 0
    try:
        main(sys.argv[1:])
    except BaseException:  # also SystemExit from the student's code: the parent reads the stderr tail
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
