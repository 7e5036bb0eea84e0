"""The autograder's checks, one exercise at a time (run in a child process).

`python -m coursekit.assignments.checks NAME` grades exercise NAME of the
implementation that COURSEKIT_IMPLEMENTATION names, and prints one JSON result
line. Each check compares the student's Keras class with `coursekit.reference`
and, when it fails, looks for the classic mistakes to name in its hint.
"""

import json
import math
import os
import signal
import sys
import traceback

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULT_PREFIX = "@@RESULT@@ "
CHECK_SECONDS = int(os.environ.get("COURSEKIT_CHECK_SECONDS", "60"))
RTOL = 1e-3  # float32 Keras against float64 NumPy over 30 steps; classic mistakes differ by far more


class CheckFailed(Exception):
    """A failed check: the message, the relative error (if measured) and a hint."""

    def __init__(self, message, error=None, hint=None):
        super().__init__(message)
        self.error, self.hint = error, hint


def rel_error(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise CheckFailed(f"wrong shape: got {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)):
        raise CheckFailed(
            "the result holds NaN or inf", hint="look for a division by zero or a sqrt of a negative number"
        )
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-3)))


# ----------------------------------------------------------------------------------------
# Optimizers
# ----------------------------------------------------------------------------------------


def _variant(base, update):
    """A reference optimizer class whose `update` is replaced: a classic mistake."""
    return type(f"{base.__name__}Mistake", (base,), {"update": update})


def _sgd_sign(self, params, grads):
    for k in params:
        params[k] += self.lr * grads[k]


def _momentum_sign(self, params, grads):
    if self.v is None:
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
    for k in params:
        self.v[k] = self.momentum * self.v[k] + self.lr * grads[k]
        params[k] += self.v[k]


def _nesterov_as_momentum(self, params, grads):
    _momentum_plain(self, params, grads)


def _momentum_plain(self, params, grads):
    if self.v is None:
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
    for k in params:
        self.v[k] = self.momentum * self.v[k] - self.lr * grads[k]
        params[k] += self.v[k]


def _adagrad_eps_inside(self, params, grads):
    if self.h is None:
        self.h = {k: np.full_like(v, self.h0) for k, v in params.items()}
    for k in params:
        self.h[k] += grads[k] ** 2
        params[k] -= self.lr * grads[k] / np.sqrt(self.h[k] + self.epsilon)


def _rmsprop_eps_inside(self, params, grads):
    if self.h is None:
        self.h = {k: np.zeros_like(v) for k, v in params.items()}
    for k in params:
        self.h[k] = self.rho * self.h[k] + (1 - self.rho) * grads[k] ** 2
        params[k] -= self.lr * grads[k] / np.sqrt(self.h[k] + self.epsilon)


def _rmsprop_rho_swapped(self, params, grads):
    if self.h is None:
        self.h = {k: np.zeros_like(v) for k, v in params.items()}
    for k in params:
        self.h[k] = (1 - self.rho) * self.h[k] + self.rho * grads[k] ** 2
        params[k] -= self.lr * grads[k] / (np.sqrt(self.h[k]) + self.epsilon)


def _adam_no_bias_correction(self, params, grads):
    if self.m is None:
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
    for k in params:
        self.m[k] += (1 - self.beta_1) * (grads[k] - self.m[k])
        self.v[k] += (1 - self.beta_2) * (grads[k] ** 2 - self.v[k])
        params[k] -= self.lr * self.m[k] / (np.sqrt(self.v[k]) + self.epsilon)


def _adam_eps_inside(self, params, grads):
    if self.m is None:
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
    self.iter += 1
    lr_t = self.lr * np.sqrt(1 - self.beta_2**self.iter) / (1 - self.beta_1**self.iter)
    for k in params:
        self.m[k] += (1 - self.beta_1) * (grads[k] - self.m[k])
        self.v[k] += (1 - self.beta_2) * (grads[k] ** 2 - self.v[k])
        params[k] -= lr_t * self.m[k] / np.sqrt(self.v[k] + self.epsilon)


# name: (class, keras kwargs of the probing configuration (the reference gets the same,
#        see reference.optimizer_kwargs), learning rate of the training check,
#        [(mistake update, hint)], generic hint)
OPTIMIZER_EXERCISES = {
    "sgd": (
        "SGD",
        {"learning_rate": 0.1},
        0.2,
        [
            (_sgd_sign, "the sign is flipped: SGD moves against the gradient, W = W - learning_rate * g"),
        ],
        "W = W - learning_rate * g",
    ),
    "momentum": (
        "Momentum",
        {"learning_rate": 0.05, "momentum": 0.8},
        0.05,
        [
            (_momentum_sign, "momentum sign flipped? v = momentum * v - learning_rate * g, then W = W + v"),
        ],
        "v = momentum * v - learning_rate * g; W = W + v",
    ),
    "nesterov": (
        "Nesterov",
        {"learning_rate": 0.05, "momentum": 0.8},
        0.05,
        [
            (
                _nesterov_as_momentum,
                "this is plain Momentum: Nesterov then adds momentum * v - learning_rate * g (new v)",
            ),
        ],
        "v = momentum * v - learning_rate * g; W = W + momentum * v - learning_rate * g",
    ),
    "adagrad": (
        "AdaGrad",
        {"learning_rate": 0.1, "epsilon": 0.3},
        0.05,
        [
            (
                _adagrad_eps_inside,
                "AdaGrad differs from step 1: is epsilon inside the square root? The course puts it outside: g / (sqrt(h) + epsilon)",
            ),
        ],
        "h = h + g * g; W = W - learning_rate * g / (sqrt(h) + epsilon)",
    ),
    "rmsprop": (
        "RMSprop",
        {"learning_rate": 0.01, "rho": 0.9, "epsilon": 0.3},
        0.005,
        [
            (
                _rmsprop_eps_inside,
                "RMSprop differs from step 1: is epsilon inside the square root? The course puts it outside",
            ),
            (_rmsprop_rho_swapped, "rho and 1 - rho swapped? h = rho * h + (1 - rho) * g * g"),
        ],
        "h = rho * h + (1 - rho) * g * g; W = W - learning_rate * g / (sqrt(h) + epsilon)",
    ),
    "adam": (
        "Adam",
        {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.9, "epsilon": 0.3},
        0.005,
        [
            (
                _adam_no_bias_correction,
                "no bias correction in Adam? lr_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t), t = iterations + 1",
            ),
            (_adam_eps_inside, "is epsilon inside the square root? The course: m / (sqrt(v) + epsilon)"),
        ],
        "see the update rule in Adam's docstring",
    ),
}


def _keras_steps(optimizer, start, grads):
    """The Keras side of `reference.gradient_steps`: values after each step of `grads`.

    Kept here rather than in a shared coursekit module that imports the models: a
    student's broken layers.py must not fail the optimizer exercises.
    """
    import keras

    variables = [keras.Variable(v) for v in start]
    out = []
    for step in grads:
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], variables))
        out.append([np.array(v.numpy()) for v in variables])
    return out


def _compare_trajectories(got, want):
    """(first differing step or None, max relative error)."""
    worst, first = 0.0, None
    for step, (g, w) in enumerate(zip(got, want), start=1):
        error = max(rel_error(a, b) for a, b in zip(g, w))
        worst = max(worst, error)
        if first is None and error > RTOL:
            first = step
    return first, worst


def _optimizer_checks(name):
    import keras

    from coursekit import optimizers, reference

    class_name, kwargs, train_lr, mistakes, rule = OPTIMIZER_EXERCISES[name]
    student_class = getattr(optimizers, class_name)
    reference_class = reference.OPTIMIZERS[class_name]
    rng = np.random.default_rng(0)

    def check_steps(start, grads, kw, label):
        ref_kw = reference.optimizer_kwargs(kw)
        got = _keras_steps(student_class(**kw), start, grads)
        first, worst = _compare_trajectories(got, reference.gradient_steps(reference_class(**ref_kw), start, grads))
        if first is None:
            return worst
        for mistake, hint in mistakes:
            mistaken = reference.gradient_steps(_variant(reference_class, mistake)(**ref_kw), start, grads)
            if _compare_trajectories(got, mistaken)[0] is None:
                raise CheckFailed(f"{class_name} differs from the reference from step {first} ({label})", worst, hint)
        raise CheckFailed(
            f"{class_name} differs from the reference from step {first} ({label})", worst, f"re-read the rule: {rule}"
        )

    def single_step():
        start = [np.array([1.0, -2.0, 0.5], "float32")]
        return check_steps(start, [[np.array([0.5, -1.5, 0.0], "float32")]], kwargs, "one step by hand")

    def random_steps():
        start = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")]
        grads = [[rng.normal(size=v.shape).astype("float32") for v in start] for _ in range(30)]
        worst = check_steps(start, grads, {}, "30 random steps, default hyperparameters")
        return max(worst, check_steps(start, grads, kwargs, "30 random steps, other hyperparameters"))

    def learns():
        keras.utils.set_random_seed(0)
        x, y = _digits()
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
        )
        model.compile(
            student_class(learning_rate=train_lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        losses = model.fit(x, y, batch_size=32, epochs=15, verbose=0).history["loss"]
        if not np.all(np.isfinite(losses)):
            raise CheckFailed(
                "the loss became NaN or inf in training", hint="check the divisions and the sign of the update"
            )
        if not losses[-1] < 0.5 * losses[0]:
            raise CheckFailed(
                f"a short training run did not learn (loss {losses[0]:.3f} -> {losses[-1]:.3f})", hint=rule
            )
        return None

    return [("one step by hand", single_step), ("30 random steps", random_steps), ("short training run learns", learns)]


def _digits():
    from coursekit.data import load_dataset

    data = load_dataset("digits", train_size=320)
    return data.x_train, data.y_train


# ----------------------------------------------------------------------------------------
# Initializers
# ----------------------------------------------------------------------------------------

SHAPES = [(784, 100), (100, 900), (3, 3, 16, 32)]


def _initializer_checks(name):
    import keras

    from coursekit import initializers

    cls = {"xavier": initializers.Xavier, "he": initializers.He}[name]
    factor = 1.0 if name == "xavier" else 2.0

    def formula():
        worst = 0.0
        for shape in SHAPES:
            fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
            got, want = float(cls(seed=1).stddev(shape)), math.sqrt(factor / fan_in)
            error = abs(got - want) / want
            worst = max(worst, error)
            if error > RTOL:
                if abs(got - math.sqrt(factor / fan_out)) < 1e-9:
                    raise CheckFailed(
                        f"{cls.__name__} std for shape {shape} is {got:.5g}, expected {want:.5g}",
                        error,
                        f"{cls.__name__} uses fan_in (the inputs of a unit: shape[0] for Dense), not fan_out",
                    )
                hint = (
                    "He's std is sqrt(2 / fan_in): is the 2 missing?"
                    if name == "he" and abs(got - math.sqrt(1 / fan_in)) < 1e-9
                    else f"std = sqrt({factor:g} / fan_in), fan_in = prod(shape[:-1])"
                )
                raise CheckFailed(
                    f"{cls.__name__} std for shape {shape} is {got:.5g}, expected {want:.5g}", error, hint
                )
        return worst

    def statistics():
        values = keras.ops.convert_to_numpy(cls(seed=3)((1000, 1000)))
        want = math.sqrt(factor / 1000)
        error = abs(values.std() / want - 1)
        if error > 0.02:
            raise CheckFailed(
                f"sampled std {values.std():.5g}, expected {want:.5g} within 2%",
                error,
                "draw from the untruncated normal times the std",
            )
        return error

    return [("std formula (Dense and conv shapes)", formula), ("sampled statistics", statistics)]


# ----------------------------------------------------------------------------------------
# BatchNorm, Dropout, WeightDecay
# ----------------------------------------------------------------------------------------


def _batchnorm_checks(name):
    import keras

    from coursekit import layers, reference
    from coursekit.gradcheck import autodiff_gradients, numerical_gradients, relative_error

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(16, 5)) * 2 + 1).astype("float32")
    gamma, beta = rng.normal(size=5).astype("float32") + 1, rng.normal(size=5).astype("float32")

    def forward():
        layer = layers.BatchNorm()
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        running = [np.zeros(5), np.zeros(5)]
        worst = 0.0
        for call in range(1, 3):
            want, _ = reference.batchnorm_forward(x, gamma, beta, *running, train=True)
            got = keras.ops.convert_to_numpy(layer(x, training=True))
            error = rel_error(got, want)
            if error > 1e-3:
                unbiased = gamma * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + 1e-6) + beta
                if rel_error(got, unbiased) < 1e-3:
                    raise CheckFailed(
                        "training output differs from the reference",
                        error,
                        "BatchNorm uses the biased variance mean((x - mu)**2): divide by N, not N - 1",
                    )
                raise CheckFailed(
                    "training output differs from the reference",
                    error,
                    "y = gamma * (x - mu) / sqrt(var + epsilon) + beta",
                )
            worst = max(worst, error)
            for variable, want_stat, label in (
                (layer.moving_mean, running[0], "moving_mean"),
                (layer.moving_variance, running[1], "moving_variance"),
            ):
                stat_error = rel_error(np.asarray(variable.numpy()), want_stat)
                if stat_error > 1e-3:
                    raise CheckFailed(
                        f"{label} after {call} training call(s) differs from the reference",
                        stat_error,
                        "moving = momentum * moving + (1 - momentum) * batch statistic, momentum = 0.9",
                    )
        return worst

    def gradient():
        from coursekit.runtime import float64

        with float64():
            layer = layers.BatchNorm()
            x64 = x.astype("float64")
            layer.build(x64.shape)
            layer.gamma.assign(gamma.astype("float64"))
            weights = rng.normal(size=(16, 5))
            x_var = keras.Variable(x64)

            def loss():
                return keras.ops.sum(keras.ops.sigmoid(layer(x_var.value, training=True)) * weights)

            variables = [x_var, layer.gamma, layer.beta]
            errors = [
                relative_error(a, n, floor=1e-6)
                for a, n in zip(autodiff_gradients(loss, variables), numerical_gradients(loss, variables))
            ]
        if max(errors) > 1e-5:
            raise CheckFailed(
                "autodiff gradients disagree with central differences",
                max(errors),
                "compute everything with keras.ops (no NumPy, no .numpy()) so gradients flow",
            )
        return max(errors)

    return [("training forward + moving statistics", forward), ("gradient check (float64)", gradient)]


def _dropout_checks(name):
    import keras

    from coursekit import layers

    x = np.random.default_rng(0).uniform(1, 2, size=(400, 50)).astype("float32")

    def course_mode():
        layer = layers.Dropout(0.2, seed=1)
        y = keras.ops.convert_to_numpy(layer(x, training=True))
        kept = y != 0
        if np.allclose(y[kept], x[kept] / 0.8, rtol=1e-5):
            raise CheckFailed(
                "training outputs are rescaled",
                None,
                "course dropout does not rescale in training (mask only); it multiplies by (1 - rate) at inference",
            )
        error = rel_error(y[kept], x[kept])
        if error > 1e-6:
            raise CheckFailed(
                "kept units are changed in training", error, "training: y = x * mask, mask = (uniform > rate)"
            )
        if abs(kept.mean() - 0.8) > 0.03:
            raise CheckFailed(
                f"kept fraction {kept.mean():.3f}, expected 0.8 for rate 0.2",
                None,
                "keep where uniform > rate (drop with probability rate)",
            )
        error = rel_error(keras.ops.convert_to_numpy(layer(x, training=False)), x * 0.8)
        if error > 1e-6:
            raise CheckFailed("inference output differs from x * (1 - rate)", error, "inference: y = x * (1 - rate)")
        return error

    def inverted_mode():
        layer = layers.Dropout(0.25, inverted=True, seed=2)
        y = keras.ops.convert_to_numpy(layer(x, training=True))
        kept = y != 0
        error = rel_error(y[kept], x[kept] / 0.75)
        if error > 1e-5:
            raise CheckFailed(
                "inverted training output differs from x * mask / (1 - rate)",
                error,
                "inverted=True: y = x * mask / (1 - rate)",
            )
        if rel_error(keras.ops.convert_to_numpy(layer(x, training=False)), x) > 1e-6:
            raise CheckFailed(
                "inverted dropout changes its input at inference", None, "inverted=True: identity at inference"
            )
        return error

    return [("course dropout: training and inference", course_mode), ("inverted dropout", inverted_mode)]


def _weight_decay_checks(name):
    import keras

    from coursekit.gradcheck import autodiff_gradients
    from coursekit.regularizers import WeightDecay

    w = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")

    def value():
        got = float(keras.ops.convert_to_numpy(WeightDecay(0.3)(keras.ops.convert_to_tensor(w))))
        want = 0.5 * 0.3 * float(np.sum(w.astype(np.float64) ** 2))
        error = abs(got - want) / want
        if error > RTOL:
            hint = (
                "the course's penalty has a factor 0.5: 0.5 * lam * sum(W**2)"
                if abs(got - 2 * want) / want < 1e-4
                else "penalty = 0.5 * lam * sum(W**2)"
            )
            raise CheckFailed(f"penalty {got:.6g}, expected {want:.6g}", error, hint)
        return error

    def gradient():
        variable = keras.Variable(w)
        [grad] = autodiff_gradients(lambda: WeightDecay(0.3)(variable.value), [variable])
        error = rel_error(grad, 0.3 * w)
        if error > RTOL:
            raise CheckFailed("gradient differs from lam * W", error, "use keras.ops so the penalty is differentiable")
        return error

    return [("penalty value", value), ("gradient is lam * W", gradient)]


EXERCISES = {
    **{name: ("optimizers.py", _optimizer_checks) for name in OPTIMIZER_EXERCISES},
    "xavier": ("initializers.py", _initializer_checks),
    "he": ("initializers.py", _initializer_checks),
    "batchnorm": ("layers.py", _batchnorm_checks),
    "dropout": ("layers.py", _dropout_checks),
    "weight_decay": ("regularizers.py", _weight_decay_checks),
}


def _timeout(signum, frame):
    raise TimeoutError(f"the check ran past its {CHECK_SECONDS} s limit (an endless loop?)")


def run_exercise(name):
    """Run every check of exercise `name`; returns a list of check results."""
    try:
        checks = EXERCISES[name][1](name)
    except Exception as error:  # the student's module failed to load or import
        return [
            {
                "check": "load",
                "passed": False,
                "error": None,
                "message": _describe(error),
                "hint": "fix the error so the file imports",
            }
        ]
    results = []
    signal.signal(signal.SIGALRM, _timeout)
    for label, check in checks:
        signal.alarm(CHECK_SECONDS)
        try:
            error = check()
            error = None if error is None else float(error)
            results.append({"check": label, "passed": True, "error": error, "message": "ok", "hint": None})
        except CheckFailed as failure:
            error = None if failure.error is None else float(failure.error)
            results.append(
                {"check": label, "passed": False, "error": error, "message": str(failure), "hint": failure.hint}
            )
        except NotImplementedError as error:
            results.append(
                {
                    "check": label,
                    "passed": False,
                    "error": None,
                    "message": f"not implemented yet ({error})",
                    "hint": "fill in the TODO block",
                }
            )
        except Exception as error:  # broken student code: a graded failure, never a crash
            results.append(
                {
                    "check": label,
                    "passed": False,
                    "error": None,
                    "message": _describe(error),
                    "hint": "read the error message and the TODO",
                }
            )
        finally:
            signal.alarm(0)
    return results


def _describe(error):
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if "/coursekit/" in f.filename and "assignments" not in f.filename
    ]
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}{where}: {text}"[:500]


if __name__ == "__main__":
    exercise = sys.argv[1]
    print(RESULT_PREFIX + json.dumps({"exercise": exercise, "checks": run_exercise(exercise)}), flush=True)
