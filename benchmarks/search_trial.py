"""Wall time of one trial of the reference search: Keras `fit` against the kit's engine.

A trial of the chapter's search builds a 784-[100]x6-10 net (SGD, weight decay), trains
it 50 epochs on 400 images in batches of 100, and records the validation and training
accuracy after every epoch. Two ways, timed back to back in each of 7 rounds (after a
warm-up), in alternating order:

- `fit`: `model.fit(validation_data=...)` plus a callback evaluating the training split
  each epoch (what the tuner did before);
- engine: `coursekit.training.train_variants` with one variant (a trial trained alone; the
  search now trains its trials in populations: `benchmarks/search.py`,
  `benchmarks/population_size.py`).

Both include building and compiling the model. The data are random: the compute does not
depend on the values.

    python benchmarks/search_trial.py            # KERAS_BACKEND=jax python ... for JAX
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's coursekit

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402

from coursekit.training import Variant, train_variants  # noqa: E402
from tuning.search import SearchSettings, build_model  # noqa: E402

ROUNDS = 7
SETTINGS = SearchSettings()
RNG = np.random.default_rng(0)
X_TRAIN, Y_TRAIN = RNG.random((400, 784), dtype=np.float32), RNG.integers(0, 10, 400)
X_VAL, Y_VAL = RNG.random((100, 784), dtype=np.float32), RNG.integers(0, 10, 100)


class TrainAccuracy(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        predicted = np.argmax(keras.ops.convert_to_numpy(self.model(X_TRAIN, training=False)), axis=1)
        self.values.append(float(np.mean(predicted == Y_TRAIN)))


def new_model():
    keras.backend.clear_session()
    return build_model(keras_tuner.HyperParameters(), SETTINGS, 784, 10)


def fit_trial():
    model = new_model()
    model.fit(
        X_TRAIN,
        Y_TRAIN,
        batch_size=SETTINGS.batch_size,
        epochs=SETTINGS.epochs,
        validation_data=(X_VAL, Y_VAL),
        callbacks=[TrainAccuracy()],
        verbose=0,
    )


def engine_trial():
    model = new_model()
    train_variants(
        [Variant("trial", model, model.optimizer)],
        X_TRAIN,
        Y_TRAIN,
        batch_size=SETTINGS.batch_size,
        epochs=SETTINGS.epochs,
        sampling="epoch",
        eval_sets={"val_accuracy": (X_VAL, Y_VAL), "train_accuracy": (X_TRAIN, Y_TRAIN)},
        verbose=0,
    )


def timed(run):
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main():
    fit_trial(), engine_trial()  # warm-up
    pairs = []
    for round_index in range(ROUNDS):
        order = (fit_trial, engine_trial) if round_index % 2 == 0 else (engine_trial, fit_trial)
        seconds = {run.__name__: timed(run) for run in order}
        pairs.append((seconds["fit_trial"], seconds["engine_trial"]))
    fit_s = statistics.median(p[0] for p in pairs)
    engine_s = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(e / f for f, e in pairs)
    print(f"backend {keras.backend.backend()}, {ROUNDS} paired rounds, median seconds per trial")
    print(f"{'fit + callback':<20}{fit_s:>8.2f}")
    print(f"{'kit engine':<20}{engine_s:>8.2f}")
    print(f"summary: a search trial takes {ratio:.2f}x the time of Keras fit ({engine_s:.2f} s against {fit_s:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
