"""The chapter's parameter-update rules as Keras optimizers.

Every class subclasses `keras.optimizers.Optimizer`: state is created in
`build`, the math is in `update_step` (written with `keras.ops` and applied
through `self.assign*`, so sparse gradients and every backend work), and the
base class keeps providing `weight_decay`, `clipnorm`, `clipvalue`,
`global_clipnorm`, `use_ema`, `gradient_accumulation_steps` and loss scaling
through `**kwargs`. Defaults are the course's (see `coursekit.reference`, the
NumPy oracle these classes are tested against).

In the formulas `g` is the gradient dL/dW of one parameter `W`; every state
variable has the shape of `W` and starts at 0.
"""

import keras
from keras import ops

from coursekit.checks import check_fraction, check_non_negative, check_positive

_PACKAGE = "coursekit"


class _CourseOptimizer(keras.optimizers.Optimizer):
    """Shared base: validates the learning rate and names the state slots.

    An optimizer created without a `name` is named as Keras names its own: the
    snake_case class name, made unique by Keras (`"sgd"`, `"sgd_1"`, `"adam"`,
    `"ada_grad"`, `"rm_sprop"`).
    """

    def __init__(self, learning_rate, name=None, **kwargs):
        check_non_negative("learning_rate", learning_rate)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def _slot(self, slots, variable):
        """The state variable in `slots` that belongs to `variable`."""
        return slots[self._get_variable_index(variable)]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        """TensorFlow only: sum the gradients over replicas, skipped when there is one.

        Keras' TensorFlow optimizer calls `ReplicaContext.all_reduce` in every traced
        training step, also with a single replica, where the sum is the identity. Each
        such call registers a custom gradient in TensorFlow's process-wide gradient
        registry, which keeps the traced graph alive for good: about 1.8 MiB per
        trained model, so a 100-trial search grew by hundreds of MiB.
        """
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            return super()._all_reduce_sum_gradients(grads_and_vars)
        return list(grads_and_vars)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SGD(_CourseOptimizer):
    """Stochastic gradient descent.

    Update rule:

    ```python
    W = W - learning_rate * g
    ```

    Args:
        learning_rate: A float, a `keras.optimizers.schedules.LearningRateSchedule`
            or a callable returning the rate. Defaults to `0.01`.
        name: String, the optimizer's name. Defaults to `None`: Keras' automatic
            name (`"sgd"`, then `"sgd_1"`, ...).
        **kwargs: `weight_decay`, `clipnorm`, `clipvalue`,
            `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`, as in `keras.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.01, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        # >>> exercise sgd
        # TODO: W = W - learning_rate * g.
        #   Cast learning_rate and g to variable.dtype (ops.cast), then update W with
        #   self.assign_sub(variable, ...): always write through self.assign*, with keras.ops.
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        self.assign_sub(variable, ops.multiply(gradient, lr))
        # <<< exercise sgd


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Momentum(_CourseOptimizer):
    """SGD with momentum (a ball rolling downhill with friction).

    Update rule, with velocity `v` starting at 0:

    ```python
    v = momentum * v - learning_rate * g
    W = W + v
    ```

    Step for step equal to `keras.optimizers.SGD(momentum=momentum)`.

    Args:
        learning_rate: A float, schedule or callable. Defaults to `0.01`.
        momentum: Float in [0, 1), the friction factor. Defaults to `0.9`.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = check_fraction("momentum", momentum)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        # >>> exercise momentum
        # TODO: v = momentum * v - learning_rate * g, then W = W + v.
        #   The velocity of `variable` is self._slot(self.velocities, variable); it starts at 0.
        #   Write v with self.assign(...) and W with self.assign_add(...). Mind the sign:
        #   the velocity points downhill (minus the gradient).
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self._slot(self.velocities, variable)
        self.assign(
            velocity,
            ops.subtract(ops.multiply(velocity, self.momentum), ops.multiply(gradient, lr)),
        )
        self.assign_add(variable, velocity)
        # <<< exercise momentum

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Nesterov(Momentum):
    """Nesterov's accelerated gradient (look ahead along the velocity).

    Update rule of the course, velocity `v` starting at 0:

    ```python
    W = W + momentum**2 * v
    W = W - (1 + momentum) * learning_rate * g
    v = momentum * v - learning_rate * g
    ```

    computed in the equivalent form `v = momentum * v - learning_rate * g;
    W = W + momentum * v - learning_rate * g` (as `keras.optimizers.SGD(nesterov=True)`).

    Args:
        learning_rate: A float, schedule or callable. Defaults to `0.01`.
        momentum: Float in [0, 1). Defaults to `0.9`.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        # >>> exercise nesterov
        # TODO: the course's rule, v starting at 0:
        #   W = W + momentum**2 * v;  W = W - (1 + momentum) * learning_rate * g;
        #   v = momentum * v - learning_rate * g.
        #   Equivalently: first v = momentum * v - learning_rate * g, then
        #   W = W + momentum * v - learning_rate * g (with the new v).
        #   The velocity is self._slot(self.velocities, variable); use self.assign / self.assign_add.
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self._slot(self.velocities, variable)
        self.assign(
            velocity,
            ops.subtract(ops.multiply(velocity, self.momentum), ops.multiply(gradient, lr)),
        )
        self.assign_add(
            variable,
            ops.subtract(ops.multiply(velocity, self.momentum), ops.multiply(gradient, lr)),
        )
        # <<< exercise nesterov


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AdaGrad(_CourseOptimizer):
    """AdaGrad: each parameter's step shrinks with its squared-gradient history.

    Update rule, with `h` starting at `initial_accumulator_value` (0 in the course):

    ```python
    h = h + g * g
    W = W - learning_rate * g / (sqrt(h) + epsilon)
    ```

    Epsilon sits outside the square root. `keras.optimizers.Adagrad` differs:
    its accumulator starts at 0.1 and its epsilon is inside the root.

    Args:
        learning_rate: A float, schedule or callable. Defaults to `0.01`.
        initial_accumulator_value: Float >= 0, the starting value of `h`.
            Defaults to `0.0`.
        epsilon: Float > 0 that keeps the division finite. Defaults to `1e-7`.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`.
    """

    def __init__(
        self,
        learning_rate=0.01,
        initial_accumulator_value=0.0,
        epsilon=1e-7,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = check_non_negative("initial_accumulator_value", initial_accumulator_value)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        initializer = keras.initializers.Constant(self.initial_accumulator_value)
        self.accumulators = self.add_optimizer_variables(variables, "accumulator", initializer)

    def update_step(self, gradient, variable, learning_rate):
        # >>> exercise adagrad
        # TODO: h = h + g * g, then W = W - learning_rate * g / (sqrt(h) + epsilon).
        #   h is self._slot(self.accumulators, variable) (it starts at
        #   initial_accumulator_value, 0 by default). Convention of the course: epsilon goes
        #   OUTSIDE the square root. Use self.assign_add / self.assign_sub and keras.ops.
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        accumulator = self._slot(self.accumulators, variable)
        self.assign_add(accumulator, ops.square(gradient))
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(gradient, lr), ops.add(ops.sqrt(accumulator), self.epsilon)),
        )
        # <<< exercise adagrad

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RMSprop(_CourseOptimizer):
    """RMSprop: AdaGrad with an exponentially forgetting history.

    Update rule, with `h` starting at 0:

    ```python
    h = rho * h + (1 - rho) * g * g
    W = W - learning_rate * g / (sqrt(h) + epsilon)
    ```

    `keras.optimizers.RMSprop` differs: rho 0.9 by default, epsilon inside the root.

    Args:
        learning_rate: A float, schedule or callable. Defaults to `0.01`.
        rho: Float in [0, 1), the decay rate of the history. Defaults to `0.99`.
        epsilon: Float > 0. Defaults to `1e-7`.
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.01, rho=0.99, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = check_fraction("rho", rho)
        self.epsilon = check_positive("epsilon", epsilon)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.mean_squares = self.add_optimizer_variables(variables, "mean_square")

    def update_step(self, gradient, variable, learning_rate):
        # >>> exercise rmsprop
        # TODO: h = rho * h + (1 - rho) * g * g, then W = W - learning_rate * g / (sqrt(h) + epsilon).
        #   h is self._slot(self.mean_squares, variable), starting at 0. Epsilon goes OUTSIDE
        #   the square root. Use self.assign / self.assign_sub and keras.ops.
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        mean_square = self._slot(self.mean_squares, variable)
        self.assign(
            mean_square,
            ops.add(
                ops.multiply(mean_square, self.rho),
                ops.multiply(ops.square(gradient), 1.0 - self.rho),
            ),
        )
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(gradient, lr), ops.add(ops.sqrt(mean_square), self.epsilon)),
        )
        # <<< exercise rmsprop

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Adam(_CourseOptimizer):
    """Adam: momentum plus AdaGrad-style scaling, with bias correction.

    Update rule, with `m`, `v` starting at 0 and `t` the step number (1, 2, ...):

    ```python
    lr_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m = m + (1 - beta_1) * (g - m)
    v = v + (1 - beta_2) * (g * g - v)
    W = W - lr_t * m / (sqrt(v) + epsilon)
    ```

    Step for step equal to `keras.optimizers.Adam` (same epsilon placement).
    With `amsgrad=True` (Keras' AMSGrad variant, not part of the course) the
    step divides by the running maximum of `v` instead:
    `v_max = maximum(v_max, v); W = W - lr_t * m / (sqrt(v_max) + epsilon)`.

    Args:
        learning_rate: A float, schedule or callable. Defaults to `0.001`.
        beta_1: Float in [0, 1), decay of the first moment. Defaults to `0.9`.
        beta_2: Float in [0, 1), decay of the second moment. Defaults to `0.999`.
        epsilon: Float > 0. Defaults to `1e-7`.
        amsgrad: Bool, use the AMSGrad variant. Defaults to `False` (the course's Adam).
        **kwargs: The keyword arguments of `keras.optimizers.Optimizer`.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = check_fraction("beta_1", beta_1)
        self.beta_2 = check_fraction("beta_2", beta_2)
        self.epsilon = check_positive("epsilon", epsilon)
        if not isinstance(amsgrad, bool):
            raise ValueError(f"`amsgrad` must be True or False; received amsgrad={amsgrad!r}")
        self.amsgrad = amsgrad

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.first_moments, self.second_moments = self.add_optimizer_variables(
            variables, ["first_moment", "second_moment"]
        )
        if self.amsgrad:
            self.max_second_moments = self.add_optimizer_variables(variables, "max_second_moment")

    def update_step(self, gradient, variable, learning_rate):
        # >>> exercise adam
        # TODO: with t = self.iterations + 1 (the step number, 1 at the first update):
        #   lr_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)   (bias correction)
        #   m = m + (1 - beta_1) * (g - m);  v = v + (1 - beta_2) * (g * g - v)
        #   W = W - lr_t * m / (sqrt(v) + epsilon)                    (epsilon OUTSIDE the root)
        #   m and v are self._slot(self.first_moments, variable) and
        #   self._slot(self.second_moments, variable). Cast t to variable.dtype.
        #   Optional, not graded (the course's Adam has amsgrad=False): Keras' AMSGrad variant.
        #   If self.amsgrad, keep the running maximum v_max = maximum(v_max, v) in
        #   self._slot(self.max_second_moments, variable) and divide by sqrt(v_max) instead of sqrt(v).
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), step)
        lr_t = ops.divide(ops.multiply(lr, ops.sqrt(1 - beta_2_power)), 1 - beta_1_power)
        m = self._slot(self.first_moments, variable)
        v = self._slot(self.second_moments, variable)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_max = self._slot(self.max_second_moments, variable)
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(m, lr_t), ops.add(ops.sqrt(v), self.epsilon)),
        )
        # <<< exercise adam

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
            }
        )
        return config


ALL = {cls.__name__: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam)}


def get(name, **kwargs):
    """Return a course optimizer by name (case-insensitive), e.g. `get("adam")`."""
    by_lower = {key.lower(): cls for key, cls in ALL.items()}
    try:
        cls = by_lower[str(name).lower()]
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}; valid names: {', '.join(ALL)}") from None
    return cls(**kwargs)
