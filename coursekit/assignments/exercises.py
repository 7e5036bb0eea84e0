"""The exercises and their checks: what the student's code is run on, and how the grader judges it.

A `Check` pairs a *probe* (a function of `coursekit.assignments.harness` and its arguments,
run on the student's code in a child process) with a *judge* (run here, in the grader's
process, on the raw arrays the probe measured). Judges compare with `coursekit.reference`
(NumPy, float64) and, when a check fails, look for the classic mistakes to name in the hint.
Every comparison is NaN-safe: a value passes only if `error <= tolerance` is true.

Public checks use fixed inputs when students run them (`check("momentum")`), so their
feedback is reproducible. When grading, the same checks run on inputs drawn afresh from the
grading seed, and hidden checks (other shapes and hyperparameters) are added: an answer fitted
to the public inputs, or written into the measurement channel by hand, earns nothing. Each
exercise is worth `POINTS`, split over its checks.
"""

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from coursekit import reference

POINTS = 10
RTOL = 1e-3  # float32 Keras against float64 NumPy over 30 steps; the classic mistakes differ by far more


class CheckFailed(Exception):
    """A failed check: the message, the relative error (if measured) and a hint."""

    def __init__(self, message, error=None, hint=None):
        super().__init__(message)
        self.error, self.hint = error, hint


@dataclasses.dataclass
class Check:
    """One graded check of an exercise: a probe to run on the student's code and the judge of its result."""

    exercise: str
    name: str
    points: float
    hidden: bool
    kind: str  # a probe function of coursekit.assignments.harness
    args: dict  # its arguments (NumPy arrays allowed)
    judge: Callable  # judge(values: {name: array}) -> worst relative error or None; raises CheckFailed

    @property
    def id(self):
        return f"{self.exercise}/{self.name}"

    @property
    def module(self):
        return EXERCISES[self.exercise].module


@dataclasses.dataclass(frozen=True)
class Exercise:
    name: str
    module: str  # the component file, coursekit/<module>.py
    make_checks: Callable  # make_checks(name, grading_rng or None) -> [Check]

    def checks(self, hidden_rng=None):
        """The public checks on fixed inputs; or, given `hidden_rng` (grading), on inputs drawn from it, plus the hidden ones."""
        checks = self.make_checks(self.name, hidden_rng)
        total = sum(c.points for c in checks if hidden_rng is not None or not c.hidden)
        if hidden_rng is not None and not math.isclose(total, POINTS):
            raise AssertionError(f"the checks of {self.name} add up to {total} points, not {POINTS}")
        return [c for c in checks if hidden_rng is not None or not c.hidden]


def rel_error(got, want, scale=None):
    """max |got - want| / max(scale, 1e-3), `scale` = |want| elementwise unless given (broadcast against want);
    CheckFailed on a wrong shape or a value that is not finite."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise CheckFailed(f"wrong shape: got {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)):
        raise CheckFailed(
            "the result holds NaN or inf", hint="look for a division by zero or a sqrt of a negative number"
        )
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want) if scale is None else scale, 1e-3)))


def feature_error(got, want):
    """rel_error against each feature's scale, max over the batch of |want| (axis 0).

    A BatchNorm output y = gamma * x_hat + beta can cancel to nearly 0 in single elements,
    where an elementwise relative error means nothing: float32 batch statistics are exact
    only to about 1e-7 * mean**2 / var of the feature's scale, which is what this measures.
    """
    return rel_error(got, want, scale=np.abs(np.asarray(want, dtype=np.float64)).max(axis=0))


def within(error, tolerance):
    """True only for a real number no larger than `tolerance` (NaN is never within)."""
    return bool(error <= tolerance)


# ----------------------------------------------------------------------------------------
# Optimizers
# ----------------------------------------------------------------------------------------


def _variant(base, update):
    """A reference optimizer class whose `update` is replaced: a classic mistake."""
    return type(f"{base.__name__}Mistake", (base,), {"update": update})


def _zeros_like(params):
    return {k: np.zeros_like(v) for k, v in params.items()}


def _sgd_sign(self, params, grads):
    for k in params:
        params[k] += self.lr * grads[k]


def _momentum_sign(self, params, grads):
    self.v = _zeros_like(params) if self.v is None else self.v
    for k in params:
        self.v[k] = self.momentum * self.v[k] + self.lr * grads[k]
        params[k] += self.v[k]


def _nesterov_as_momentum(self, params, grads):
    self.v = _zeros_like(params) if self.v is None else self.v
    for k in params:
        self.v[k] = self.momentum * self.v[k] - self.lr * grads[k]
        params[k] += self.v[k]


def _adagrad_eps_inside(self, params, grads):
    self.h = {k: np.full_like(v, self.h0) for k, v in params.items()} if self.h is None else self.h
    for k in params:
        self.h[k] += grads[k] ** 2
        params[k] -= self.lr * grads[k] / np.sqrt(self.h[k] + self.epsilon)


def _rmsprop_eps_inside(self, params, grads):
    self.h = _zeros_like(params) if self.h is None else self.h
    for k in params:
        self.h[k] = self.rho * self.h[k] + (1 - self.rho) * grads[k] ** 2
        params[k] -= self.lr * grads[k] / np.sqrt(self.h[k] + self.epsilon)


def _rmsprop_rho_swapped(self, params, grads):
    self.h = _zeros_like(params) if self.h is None else self.h
    for k in params:
        self.h[k] = (1 - self.rho) * self.h[k] + self.rho * grads[k] ** 2
        params[k] -= self.lr * grads[k] / (np.sqrt(self.h[k]) + self.epsilon)


def _adam_no_bias_correction(self, params, grads):
    if self.m is None:
        self.m, self.v = _zeros_like(params), _zeros_like(params)
    for k in params:
        self.m[k] += (1 - self.beta_1) * (grads[k] - self.m[k])
        self.v[k] += (1 - self.beta_2) * (grads[k] ** 2 - self.v[k])
        params[k] -= self.lr * self.m[k] / (np.sqrt(self.v[k]) + self.epsilon)


def _adam_eps_inside(self, params, grads):
    if self.m is None:
        self.m, self.v = _zeros_like(params), _zeros_like(params)
    self.iter += 1
    lr_t = self.lr * np.sqrt(1 - self.beta_2**self.iter) / (1 - self.beta_1**self.iter)
    for k in params:
        self.m[k] += (1 - self.beta_1) * (grads[k] - self.m[k])
        self.v[k] += (1 - self.beta_2) * (grads[k] ** 2 - self.v[k])
        params[k] -= lr_t * self.m[k] / np.sqrt(self.v[k] + self.epsilon)


@dataclasses.dataclass(frozen=True)
class OptimizerExercise:
    class_name: str
    probing: dict  # Keras keyword arguments of the "other hyperparameters" check
    train_lr: float  # learning rate of the short training run
    mistakes: tuple  # ((reference update with the mistake, hint), ...)
    rule: str
    hidden_kwargs: Callable  # rng -> Keras keyword arguments


def _log_uniform(rng, low, high):
    return float(10 ** rng.uniform(low, high))


OPTIMIZERS = {
    "sgd": OptimizerExercise(
        "SGD",
        {"learning_rate": 0.1},
        0.2,
        ((_sgd_sign, "the sign is flipped: SGD moves against the gradient, W = W - learning_rate * g"),),
        "W = W - learning_rate * g",
        lambda rng: {"learning_rate": _log_uniform(rng, -2, -0.5)},
    ),
    "momentum": OptimizerExercise(
        "Momentum",
        {"learning_rate": 0.05, "momentum": 0.8},
        0.05,
        ((_momentum_sign, "momentum sign flipped? v = momentum * v - learning_rate * g, then W = W + v"),),
        "v = momentum * v - learning_rate * g; W = W + v",
        lambda rng: {"learning_rate": _log_uniform(rng, -2, -1), "momentum": float(rng.uniform(0.5, 0.95))},
    ),
    "nesterov": OptimizerExercise(
        "Nesterov",
        {"learning_rate": 0.05, "momentum": 0.8},
        0.05,
        (
            (
                _nesterov_as_momentum,
                "this is plain Momentum: Nesterov then adds momentum * v - learning_rate * g (new v)",
            ),
        ),
        "v = momentum * v - learning_rate * g; W = W + momentum * v - learning_rate * g",
        lambda rng: {"learning_rate": _log_uniform(rng, -2, -1), "momentum": float(rng.uniform(0.5, 0.95))},
    ),
    "adagrad": OptimizerExercise(
        "AdaGrad",
        {"learning_rate": 0.1, "epsilon": 0.3},
        0.05,
        (
            (
                _adagrad_eps_inside,
                "is epsilon inside the square root? The course puts it outside: g / (sqrt(h) + epsilon)",
            ),
        ),
        "h = h + g * g; W = W - learning_rate * g / (sqrt(h) + epsilon)",
        lambda rng: {
            "learning_rate": _log_uniform(rng, -2, -0.5),
            "epsilon": _log_uniform(rng, -3, -1),
            "initial_accumulator_value": float(rng.uniform(0.0, 0.5)),
        },
    ),
    "rmsprop": OptimizerExercise(
        "RMSprop",
        {"learning_rate": 0.01, "rho": 0.9, "epsilon": 0.3},
        0.005,
        (
            (_rmsprop_eps_inside, "is epsilon inside the square root? The course puts it outside"),
            (_rmsprop_rho_swapped, "rho and 1 - rho swapped? h = rho * h + (1 - rho) * g * g"),
        ),
        "h = rho * h + (1 - rho) * g * g; W = W - learning_rate * g / (sqrt(h) + epsilon)",
        lambda rng: {
            "learning_rate": _log_uniform(rng, -3, -1.5),
            "rho": float(rng.uniform(0.8, 0.99)),
            "epsilon": _log_uniform(rng, -3, -1),
        },
    ),
    "adam": OptimizerExercise(
        "Adam",
        {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.9, "epsilon": 0.3},
        0.005,
        (
            (
                _adam_no_bias_correction,
                "no bias correction in Adam? lr_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t), "
                "t = iterations + 1",
            ),
            (_adam_eps_inside, "is epsilon inside the square root? The course: m / (sqrt(v) + epsilon)"),
        ),
        "see the update rule in Adam's docstring",
        lambda rng: {
            "learning_rate": _log_uniform(rng, -3, -1.5),
            "beta_1": float(rng.uniform(0.6, 0.95)),
            "beta_2": float(rng.uniform(0.9, 0.999)),
            "epsilon": _log_uniform(rng, -3, -1),
        },
    ),
}


def _steps_check(exercise, name, points, hidden, kwargs, start, grads):
    spec = OPTIMIZERS[exercise]
    reference_class = reference.OPTIMIZERS[spec.class_name]
    ref_kwargs = reference.optimizer_kwargs(kwargs)
    want = reference.gradient_steps(reference_class(**ref_kwargs), start, grads)

    def trajectory(values):
        got = [values[f"param_{i}"] for i in range(len(start))]
        return [[g[step] for g in got] for step in range(len(grads))]

    def first_difference(got, expected):
        worst, first = 0.0, None
        for step, (g, w) in enumerate(zip(got, expected), start=1):
            error = max(rel_error(a, b) for a, b in zip(g, w))
            worst = max(worst, error)
            if first is None and not within(error, RTOL):
                first = step
        return first, worst

    def judge(values):
        for i, value in enumerate(start):
            shape = (len(grads), *value.shape)
            if values[f"param_{i}"].shape != shape:
                raise CheckFailed(f"wrong shape: got {values[f'param_{i}'].shape}, expected {shape}")
        got = trajectory(values)
        first, worst = first_difference(got, want)
        if first is None:
            return worst
        message = f"{spec.class_name} differs from the reference from step {first} ({name}; {_kwargs_text(kwargs)})"
        for mistake, hint in spec.mistakes:
            mistaken = reference.gradient_steps(_variant(reference_class, mistake)(**ref_kwargs), start, grads)
            if first_difference(got, mistaken)[0] is None:
                raise CheckFailed(message, worst, hint)
        hint = f"re-read the rule: {spec.rule}"
        if hidden:
            hint += "; use the hyperparameters of self (self.momentum, self.epsilon, ...), never fixed numbers"
        raise CheckFailed(message, worst, hint)

    args = {"class_name": spec.class_name, "kwargs": kwargs, "start": start, "grads": grads}
    return Check(exercise, name, points, hidden, "optimizer_steps", args, judge)


def _kwargs_text(kwargs):
    return ", ".join(f"{k}={v:.4g}" for k, v in kwargs.items()) or "default hyperparameters"


def _mlp_loss(weights, x, y):
    """Mean softmax cross-entropy of the 2-layer ReLU net `weights` = [W1, b1, W2, b2] (NumPy, float64)."""
    w1, b1, w2, b2 = (np.asarray(w, dtype=np.float64) for w in weights)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    return float(reference.softmax_cross_entropy(logits, y)[0])


def _training_check(exercise, name, points, seed):
    from coursekit.data import load_dataset

    spec = OPTIMIZERS[exercise]
    data = load_dataset("digits", train_size=320)
    rng = np.random.default_rng(seed)
    weights = [
        (rng.standard_normal((64, 32)) * np.sqrt(2 / 64)).astype("float32"),
        np.zeros(32, "float32"),
        (rng.standard_normal((32, 10)) * np.sqrt(2 / 32)).astype("float32"),
        np.zeros(10, "float32"),
    ]
    x, y = data.x_train, data.y_train
    before = _mlp_loss(weights, x, y)

    def judge(values):
        trained = [values[f"weight_{i}"] for i in range(len(weights))]
        for got, start in zip(trained, weights):
            if got.shape != start.shape:
                raise CheckFailed(f"trained weights have shape {got.shape}, expected {start.shape}")
            if not np.all(np.isfinite(got)):
                raise CheckFailed(
                    "the weights became NaN or inf in training", hint="check the divisions and the sign of the update"
                )
        after = _mlp_loss(trained, x, y)
        if not after < 0.5 * before:
            raise CheckFailed(f"a short training run did not learn (loss {before:.3f} -> {after:.3f})", hint=spec.rule)
        return None

    args = {
        "class_name": spec.class_name,
        "learning_rate": spec.train_lr,
        "weights": weights,
        "x": x,
        "y": y,
        "epochs": 15,
        "batch_size": 32,
    }
    return Check(exercise, name, points, False, "optimizer_training", args, judge)


def _optimizer_checks(exercise, hidden_rng):
    spec = OPTIMIZERS[exercise]
    rng = np.random.default_rng(0) if hidden_rng is None else hidden_rng
    start = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")]
    grads = [[rng.normal(size=v.shape).astype("float32") for v in start] for _ in range(30)]
    if hidden_rng is None:
        one_start, one_grad = np.array([1.0, -2.0, 0.5], "float32"), np.array([0.5, -1.5, 0.0], "float32")
    else:
        one_start, one_grad = rng.normal(size=3).astype("float32"), rng.normal(size=3).astype("float32")
    checks = [
        _steps_check(exercise, "one step by hand", 2, False, spec.probing, [one_start], [[one_grad]]),
        _steps_check(exercise, "30 random steps, default hyperparameters", 2, False, {}, start, grads),
        _steps_check(exercise, "30 random steps, other hyperparameters", 2, False, spec.probing, start, grads),
        _training_check(exercise, "short training run learns (compile + fit)", 1, int(rng.integers(0, 2**31))),
    ]
    if hidden_rng is not None:
        shapes = [tuple(int(n) for n in hidden_rng.integers(2, 7, size=2)), (int(hidden_rng.integers(2, 7)),)]
        scale = _log_uniform(hidden_rng, -1, 0.5)
        start = [hidden_rng.normal(size=s).astype("float32") for s in shapes]
        grads = [[(hidden_rng.normal(size=s) * scale).astype("float32") for s in shapes] for _ in range(20)]
        kwargs = spec.hidden_kwargs(hidden_rng)
        checks.append(
            _steps_check(exercise, "hidden: other shapes, hyperparameters and gradients", 3, True, kwargs, start, grads)
        )
    return checks


# ----------------------------------------------------------------------------------------
# Initializers
# ----------------------------------------------------------------------------------------

INITIALIZERS = {"xavier": ("Xavier", 1.0), "he": ("He", 2.0)}
PUBLIC_SHAPES = [(784, 100), (100, 900), (3, 3, 16, 32)]


def _stddev_check(exercise, name, points, hidden, shapes):
    class_name, factor = INITIALIZERS[exercise]

    def judge(values):
        worst = 0.0
        for i, shape in enumerate(shapes):
            fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
            got, want = float(values[f"stddev_{i}"]), math.sqrt(factor / fan_in)
            if not math.isfinite(got):
                raise CheckFailed(
                    f"{class_name} std for shape {shape} is {got} (NaN or inf)",
                    None,
                    "look for a division by zero or a sqrt of a negative number",
                )
            error = abs(got - want) / want
            worst = max(worst, error)
            if within(error, RTOL):
                continue
            message = f"{class_name} std for shape {shape} is {got:.5g}, expected {want:.5g}"
            candidates = {
                f"{class_name} uses fan_in (the inputs of a unit: shape[0] for Dense, kh * kw * c_in for conv), "
                "not fan_out": math.sqrt(factor / fan_out),
                "He's std is sqrt(2 / fan_in): is the 2 missing?": math.sqrt(1 / fan_in) if factor == 2 else None,
                "this is Glorot's sqrt(2 / (fan_in + fan_out)); the course's rule uses fan_in only": math.sqrt(
                    2 / (fan_in + fan_out)
                ),
                "fan_in of a conv kernel (kh, kw, c_in, c_out) is kh * kw * c_in, not shape[0]": (
                    math.sqrt(factor / shape[0]) if len(shape) > 2 else None
                ),
            }
            for hint, value in candidates.items():
                if value is not None and math.isclose(got, value, rel_tol=1e-6):
                    raise CheckFailed(message, error, hint)
            raise CheckFailed(message, error, f"std = sqrt({factor:g} / fan_in), fan_in = prod(shape[:-1])")
        return worst

    return Check(
        exercise, name, points, hidden, "initializer_stddev", {"class_name": class_name, "shapes": shapes}, judge
    )


def _sample_check(exercise, name, points, hidden, shape, seed):
    class_name, factor = INITIALIZERS[exercise]
    want = math.sqrt(factor / int(np.prod(shape[:-1])))

    def judge(values):
        sample = values["sample"].astype(np.float64)
        if sample.shape != tuple(shape):
            raise CheckFailed(f"a draw for shape {tuple(shape)} has shape {sample.shape}")
        if not np.all(np.isfinite(sample)):
            raise CheckFailed("the draw holds NaN or inf")
        error = abs(sample.std() / want - 1)
        if not within(error, 0.02):
            raise CheckFailed(
                f"sampled std {sample.std():.5g}, expected {want:.5g} within 2%",
                error,
                "draw from the untruncated normal times the std",
            )
        if not within(abs(sample.mean()), 5 * want / math.sqrt(sample.size)):
            raise CheckFailed(f"sampled mean {sample.mean():.3g} is not 0", None, "the normal is centred at 0")
        tails = float(np.mean(np.abs(sample) > 2 * want))
        if not 0.035 <= tails <= 0.056:
            raise CheckFailed(
                f"{tails:.2%} of the values lie beyond 2 std (a normal has 4.55%)",
                None,
                "the course's initial weights are an UNtruncated normal (keras.random.normal)",
            )
        return error

    args = {"class_name": class_name, "shape": list(shape), "seed": seed}
    return Check(exercise, name, points, hidden, "initializer_sample", args, judge)


def _random_shapes(rng):
    k = int(rng.choice([1, 3, 5]))
    return [
        (int(rng.integers(10, 3000)), int(rng.integers(1, 500))),
        (k, k, int(rng.integers(1, 64)), int(rng.integers(1, 64))),
    ]


def _initializer_checks(exercise, hidden_rng):
    public = PUBLIC_SHAPES if hidden_rng is None else _random_shapes(hidden_rng)
    seed = 3 if hidden_rng is None else int(hidden_rng.integers(0, 2**31))
    checks = [
        _stddev_check(exercise, "std formula (Dense and conv shapes)", 4, False, public),
        _sample_check(exercise, "sampled values: std, mean, untruncated tails", 2, False, (500, 400), seed),
    ]
    if hidden_rng is not None:
        shapes = _random_shapes(hidden_rng)
        checks.append(_stddev_check(exercise, "hidden: other Dense and conv shapes", 3, True, shapes))
        shape = (int(hidden_rng.integers(100, 1000)), int(hidden_rng.integers(200, 400)))
        seed = int(hidden_rng.integers(0, 2**31))
        checks.append(_sample_check(exercise, "hidden: another shape and seed", 1, True, shape, seed))
    return checks


# ----------------------------------------------------------------------------------------
# BatchNorm
# ----------------------------------------------------------------------------------------


def _batchnorm_probe(rng, n, d, scale=2.0, shift=1.0):
    x = (rng.normal(size=(n, d)) * scale + shift).astype("float32")
    gamma = (rng.normal(size=d) + 1).astype("float32")
    beta = rng.normal(size=d).astype("float32")
    dout = rng.normal(size=(n, d))
    return x, gamma, beta, dout


def _batchnorm_check(name, points, hidden, x, gamma, beta, dout, momentum, epsilon, what):
    """`what`: which measurements to judge, from ("output", "moving", "gradients")."""

    def expected(calls, unbiased=False, swapped=False):
        running = [np.zeros(x.shape[1]), np.zeros(x.shape[1])]
        outputs, stats = [], []
        for _ in range(calls):
            x64 = x.astype(np.float64)
            if unbiased or swapped:
                mu, var = x64.mean(0), x64.var(0, ddof=1 if unbiased else 0)
                m = 1 - momentum if swapped else momentum
                running = [m * running[0] + (1 - m) * mu, m * running[1] + (1 - m) * var]
                outputs.append(gamma * (x64 - mu) / np.sqrt(var + epsilon) + beta)
            else:
                out, _ = reference.batchnorm_forward(
                    x64, gamma, beta, *running, train=True, momentum=momentum, eps=epsilon
                )
                outputs.append(out)
            stats.append([running[0].copy(), running[1].copy()])
        inference, _ = reference.batchnorm_forward(
            x.astype(np.float64), gamma, beta, *running, train=False, momentum=momentum, eps=epsilon
        )
        return outputs, stats, inference

    def output_mistake(got):
        """The hint for a training output that matches a classic mistake, else None."""
        unbiased = expected(1, unbiased=True)[0][0]
        if within(feature_error(got, unbiased), RTOL):
            return "BatchNorm uses the biased variance mean((x - mu)**2): divide by N, not N - 1"
        return None

    def moving_mistake(got_mean, got_variance):
        """The hint for moving statistics (after two calls) that match a classic mistake, else None."""
        for kind, hint in (
            ("swapped", "momentum and 1 - momentum swapped? moving = momentum * moving + (1 - momentum) * batch"),
            ("unbiased", "BatchNorm uses the biased variance mean((x - mu)**2): divide by N, not N - 1"),
        ):
            stats = expected(2, **{kind: True})[1][1]
            if within(rel_error(got_mean, stats[0]), RTOL) and within(rel_error(got_variance, stats[1]), RTOL):
                return hint
        return None

    def judge(values):
        outputs, stats, inference = expected(2)
        worst = 0.0
        if "output" in what:
            error = feature_error(values["train_output_1"], outputs[0])
            if not within(error, RTOL):
                raise CheckFailed(
                    "training output differs from the reference",
                    error,
                    output_mistake(values["train_output_1"])
                    or "y = gamma * (x - mu) / sqrt(var + epsilon) + beta, statistics over the batch axis",
                )
            worst = max(worst, error)
        if "moving" in what:
            for call in (1, 2):
                for label, index in (("moving_mean", 0), ("moving_variance", 1)):
                    error = rel_error(values[f"{label}_{call}"], stats[call - 1][index])
                    if not within(error, RTOL):
                        raise CheckFailed(
                            f"{label} after {call} training call(s) differs from the reference",
                            error,
                            moving_mistake(values["moving_mean_2"], values["moving_variance_2"])
                            or "moving = momentum * moving + (1 - momentum) * batch statistic (self.momentum), "
                            "written with .assign",
                        )
                    worst = max(worst, error)
            error = feature_error(values["inference_output"], inference)
            if not within(error, RTOL):
                raise CheckFailed(
                    "inference output differs from the reference", error, "inference uses the moving statistics"
                )
            worst = max(worst, error)
        if "gradients" in what:
            _, cache = reference.batchnorm_forward(
                x.astype(np.float64),
                gamma.astype(np.float64),
                beta.astype(np.float64),
                np.zeros(x.shape[1]),
                np.zeros(x.shape[1]),
                train=True,
                momentum=momentum,
                eps=epsilon,
            )
            for label, want in zip(("grad_x", "grad_gamma", "grad_beta"), reference.batchnorm_backward(dout, cache)):
                error = rel_error(values[label], want)
                if not within(error, 1e-6):
                    raise CheckFailed(
                        f"{label.replace('grad_', 'gradient of ')} differs from the analytic one",
                        error,
                        "compute everything with keras.ops (no NumPy, no .numpy()) so gradients flow",
                    )
                worst = max(worst, error)
        return worst

    args = {
        "x": x,
        "gamma": gamma,
        "beta": beta,
        "dout": dout,
        "momentum": momentum,
        "epsilon": epsilon,
        "calls": 2,
    }
    return Check("batchnorm", name, points, hidden, "batchnorm", args, judge)


def _batchnorm_checks(exercise, hidden_rng):
    x, gamma, beta, dout = _batchnorm_probe(np.random.default_rng(0) if hidden_rng is None else hidden_rng, 16, 5)
    checks = [
        _batchnorm_check(
            "training output (batch mean, biased variance, gamma, beta)",
            3,
            False,
            x,
            gamma,
            beta,
            dout,
            0.9,
            1e-6,
            ("output",),
        ),
        _batchnorm_check(
            "moving statistics over two calls, inference output", 2, False, x, gamma, beta, dout, 0.9, 1e-6, ("moving",)
        ),
        _batchnorm_check(
            "gradients of the training output (float64)", 2, False, x, gamma, beta, dout, 0.9, 1e-6, ("gradients",)
        ),
    ]
    if hidden_rng is not None:
        n, d = int(hidden_rng.integers(8, 40)), int(hidden_rng.integers(2, 12))
        x, gamma, beta, dout = _batchnorm_probe(hidden_rng, n, d, scale=_log_uniform(hidden_rng, -1, 1))
        momentum, epsilon = float(hidden_rng.uniform(0.5, 0.99)), _log_uniform(hidden_rng, -4, -2)
        checks.append(
            _batchnorm_check(
                "hidden: other shapes, momentum and epsilon",
                3,
                True,
                x,
                gamma,
                beta,
                dout,
                momentum,
                epsilon,
                ("output", "moving"),
            )
        )
    return checks


# ----------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------


def _dropout_check(name, points, hidden, x, rate, seed, inverted, what):
    """`what`: "training" or "inference"."""

    def judge(values):
        if what == "inference":
            want = x if inverted else x * (1 - rate)
            error = rel_error(values["inference_output"], want)
            if not within(error, 1e-5):
                hint = "inverted=True: identity at inference" if inverted else "inference: y = x * (1 - rate)"
                raise CheckFailed("the inference output differs from the rule", error, hint)
            return error
        first, second = values["train_output_1"], values["train_output_2"]
        rel_error(first, x)  # shape and finiteness
        kept = first != 0
        scale = 1 / (1 - rate) if inverted else 1.0
        error = rel_error(first[kept], x[kept] * scale)
        if not within(error, 1e-5):
            if not inverted and within(rel_error(first[kept], x[kept] / (1 - rate)), 1e-5):
                raise CheckFailed(
                    "training outputs are rescaled",
                    error,
                    "course dropout does not rescale in training (mask only); it multiplies by (1 - rate) at inference",
                )
            rule = "x * mask / (1 - rate)" if inverted else "x * mask, mask = (uniform > rate)"
            raise CheckFailed(f"kept units are not {rule}", error, f"training: y = {rule}")
        fraction = float(kept.mean())
        if not abs(fraction - (1 - rate)) <= 0.03:
            raise CheckFailed(
                f"kept fraction {fraction:.3f}, expected {1 - rate:.3f} for rate {rate:.3g}",
                None,
                "keep where uniform > rate (drop with probability rate)",
            )
        if np.array_equal(first != 0, second != 0):
            raise CheckFailed(
                "two training calls dropped the same units",
                None,
                "draw a new mask at every call: keras.random.uniform(..., seed=self.seed_generator)",
            )
        return error

    args = {"x": x, "rate": rate, "seed": seed, "inverted": inverted}
    return Check("dropout", name, points, hidden, "dropout", args, judge)


def _dropout_checks(exercise, hidden_rng):
    rng = np.random.default_rng(0) if hidden_rng is None else hidden_rng
    x = rng.uniform(1, 2, size=(400, 50)).astype("float32")
    seeds = (1, 2) if hidden_rng is None else tuple(int(s) for s in rng.integers(0, 2**31, size=2))
    checks = [
        _dropout_check(
            "training: keep where uniform > rate, no rescaling", 3, False, x, 0.2, seeds[0], False, "training"
        ),
        _dropout_check("inference: x * (1 - rate)", 2, False, x, 0.2, seeds[0], False, "inference"),
        _dropout_check(
            "inverted=True: x * mask / (1 - rate), identity at inference", 1, False, x, 0.25, seeds[1], True, "training"
        ),
        _dropout_check("inverted=True at inference", 1, False, x, 0.25, seeds[1], True, "inference"),
    ]
    if hidden_rng is not None:
        shape = (int(hidden_rng.integers(200, 500)), int(hidden_rng.integers(40, 100)))
        x = hidden_rng.uniform(1, 2, size=shape).astype("float32")
        rate, seed = float(hidden_rng.uniform(0.1, 0.7)), int(hidden_rng.integers(0, 2**31))
        checks += [
            _dropout_check(
                "hidden: another rate, shape and seed (training)", 2, True, x, rate, seed, False, "training"
            ),
            _dropout_check("hidden: another rate (inference)", 1, True, x, rate, seed, False, "inference"),
        ]
    return checks


# ----------------------------------------------------------------------------------------
# Weight decay
# ----------------------------------------------------------------------------------------


def _weight_decay_check(name, points, hidden, w, lam, what):
    def judge(values):
        want = 0.5 * lam * float(np.sum(w.astype(np.float64) ** 2))
        if what == "penalty":
            got = float(np.asarray(values["penalty"]).reshape(-1)[0]) if values["penalty"].size == 1 else math.nan
            error = abs(got - want) / want
            if not within(error, RTOL):
                hint = "penalty = 0.5 * lam * sum(W**2)"
                if math.isclose(got, 2 * want, rel_tol=1e-4):
                    hint = "the course's penalty has a factor 0.5: 0.5 * lam * sum(W**2)"
                raise CheckFailed(f"penalty {got:.6g}, expected {want:.6g}", error, hint)
            return error
        error = rel_error(values["gradient"], lam * w)
        if not within(error, RTOL):
            raise CheckFailed("gradient differs from lam * W", error, "use keras.ops so the penalty is differentiable")
        return error

    return Check("weight_decay", name, points, hidden, "weight_decay", {"w": w, "lam": lam}, judge)


def _weight_decay_checks(exercise, hidden_rng):
    w = (np.random.default_rng(0) if hidden_rng is None else hidden_rng).normal(size=(6, 4)).astype("float32")
    checks = [
        _weight_decay_check("penalty 0.5 * lam * sum(W**2)", 4, False, w, 0.3, "penalty"),
        _weight_decay_check("gradient lam * W (autodiff)", 3, False, w, 0.3, "gradient"),
    ]
    if hidden_rng is not None:
        shape = tuple(int(n) for n in hidden_rng.integers(1, 30, size=int(hidden_rng.integers(1, 4))))
        w = hidden_rng.normal(size=shape).astype("float32")
        lam = _log_uniform(hidden_rng, -4, 0)
        checks += [
            _weight_decay_check("hidden: another lambda and shape (penalty)", 2, True, w, lam, "penalty"),
            _weight_decay_check("hidden: another lambda and shape (gradient)", 1, True, w, lam, "gradient"),
        ]
    return checks


EXERCISES = {
    **{name: Exercise(name, "optimizers", _optimizer_checks) for name in OPTIMIZERS},
    "xavier": Exercise("xavier", "initializers", _initializer_checks),
    "he": Exercise("he", "initializers", _initializer_checks),
    "batchnorm": Exercise("batchnorm", "layers", _batchnorm_checks),
    "dropout": Exercise("dropout", "layers", _dropout_checks),
    "weight_decay": Exercise("weight_decay", "regularizers", _weight_decay_checks),
}


def grading_checks(name, hidden_seed=None):
    """The checks of exercise `name`: the public ones on fixed inputs when `hidden_seed` is None; else
    those redrawn from `default_rng([hidden_seed, index of name])`, plus the hidden ones."""
    return EXERCISES[name].checks(
        None if hidden_seed is None else np.random.default_rng([hidden_seed, list(EXERCISES).index(name)])
    )
