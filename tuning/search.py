"""The chapter's hyperparameter search, as a user of the kit's tuners: settings, hypermodel, tuner.

Objective: accuracy on a validation split carved from the training images (never
the test set), at the final epoch (as the reference ranks its trials). By default, as the
reference: learning rate log-uniform on [1e-6, 1e-2], weight decay lambda log-uniform on
[1e-8, 1e-4], SGD, batches of 100, a 784-[100]x6-10 net on the first 500 training images with
20% held out.
"""

import dataclasses
import functools
import math

import keras_tuner

from coursekit import optimizers, runtime
from coursekit.checks import check_number
from coursekit.models import classification_loss, multilayer_net
from tuning import tuner as tuners
from tuning.oracles import ORACLES

BATCH_NORM = ("off", "on", "tune")
OBJECTIVE = "val_accuracy"
TUNERS = {
    "random": tuners.RandomSearch,
    "narrowing": tuners.Narrowing,
    "bayesian": tuners.BayesianOptimization,
    "hyperband": tuners.Hyperband,
}


@dataclasses.dataclass
class SearchSettings:
    """Everything a search depends on (recorded in config.json)."""

    dataset: str = "auto"
    train_size: int = 500
    validation_fraction: float = 0.2
    hidden_sizes: list = dataclasses.field(default_factory=lambda: [100] * 6)
    batch_size: int = 100
    epochs: int = 50
    trials: int = 100
    oracle: str = "narrowing"
    learning_rate_range: tuple = (1e-6, 1e-2)
    weight_decay_range: tuple = (1e-8, 1e-4)
    optimizers: tuple = ("SGD",)
    initializers: tuple = ("he",)
    batch_norm: str = "off"
    max_dropout: float = 0.0
    mixed_precision: bool = False
    rounds: int | None = None
    keep: int | None = None
    margin: float = 0.1
    population: int | None = None
    workers: int | None = None
    seed: int = 0

    def population_size(self):
        """K, the trials trained at once: `population`, by default a narrowing round (20 of 100 trials)."""
        rounds = self.rounds or math.ceil(self.trials / 20)
        return self.population or math.ceil(self.trials / rounds)

    def validate(self):
        """Raise ValueError naming the first bad setting."""
        check_number("trials", self.trials, low=1)
        check_number("epochs", self.epochs, low=1)
        check_number("batch_size", self.batch_size, low=1)
        check_number("train_size", self.train_size, low=2)
        check_number("max_dropout", self.max_dropout, low=0.0, high=1.0, high_open=True)
        check_number("margin", self.margin, low=0.0, high=1.0)
        if self.oracle not in ORACLES:
            raise ValueError(f"Unknown oracle {self.oracle!r}; valid: {', '.join(ORACLES)}")
        if self.batch_norm not in BATCH_NORM:
            raise ValueError(f"batch_norm must be one of {', '.join(BATCH_NORM)}; received {self.batch_norm!r}")
        for name, (low, high) in (
            ("learning_rate_range", self.learning_rate_range),
            ("weight_decay_range", self.weight_decay_range),
        ):
            if not 0 < low < high:
                raise ValueError(f"{name} must satisfy 0 < low < high; received {name}={(low, high)}")
        for name in self.optimizers:
            optimizers.get(name)
        if self.rounds is not None:
            check_number("rounds", self.rounds, low=1, high=self.trials)
        for name in ("population", "workers"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=1)
        return self


def build_model(hp, settings, input_size, num_classes):
    """The hypermodel: a course net whose hyperparameters come from `hp`."""
    runtime.set_mixed_precision(settings.mixed_precision)  # global: set it for every model, whatever came before
    learning_rate = hp.Float("learning_rate", *settings.learning_rate_range, sampling="log")
    weight_decay = hp.Float("weight_decay", *settings.weight_decay_range, sampling="log")
    optimizer = _choice(hp, "optimizer", settings.optimizers)
    weight_init = _choice(hp, "weight_init", settings.initializers)
    batch_norm = hp.Boolean("batch_norm") if settings.batch_norm == "tune" else settings.batch_norm == "on"
    dropout = hp.Float("dropout", 0.0, settings.max_dropout) if settings.max_dropout > 0 else 0.0
    model = multilayer_net(
        input_size,
        settings.hidden_sizes,
        num_classes,
        weight_init=weight_init,
        batch_norm=batch_norm,
        dropout_rate=dropout,
        weight_decay=weight_decay,
    )
    model.compile(optimizers.get(optimizer, learning_rate=learning_rate), classification_loss(), metrics=["accuracy"])
    return model


def _choice(hp, name, options):
    return hp.Choice(name, list(options)) if len(options) > 1 else options[0]


def make_tuner(settings, dataset, **kwargs):
    """The kit's tuner for `settings.oracle`, over the chapter's hypermodel, scoring trials by their final epoch.

    `kwargs`: keras-tuner's `directory`, `project_name`, `overwrite`, ...
    """
    oracle_arguments = {
        "random": {"max_trials": settings.trials},
        "narrowing": {
            "max_trials": settings.trials,
            "rounds": settings.rounds,
            "keep": settings.keep,
            "margin": settings.margin,
        },
        "bayesian": {"max_trials": settings.trials},
        "hyperband": {"max_epochs": settings.epochs},
    }[settings.oracle]
    return TUNERS[settings.oracle](
        functools.partial(
            build_model, settings=settings, input_size=dataset.num_features, num_classes=dataset.num_classes
        ),
        objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
        seed=settings.seed,
        population=settings.population_size(),
        score="final",
        workers=settings.workers,
        **oracle_arguments,
        **kwargs,
    )
