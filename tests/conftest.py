"""Shared fixtures: a seeded, clean Keras state for every test, and the real MNIST files."""

import os
import pathlib

import keras
import numpy as np
import pytest

from coursekit import runtime

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "datasets" / "mnist"
BACKEND = keras.backend.backend()
# The tests compare computations to float32 round-off; on a GPU, TF32 products would not be.
runtime.full_float32_matmuls()


def checkout_first_env(**variables):
    """os.environ for a child Python: this checkout's kit first on PYTHONPATH (whatever the environment
    has installed), the rest of PYTHONPATH kept, plus `variables`."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, **variables}


@pytest.fixture(autouse=True)
def clean_keras_state():
    """Seed everything and restore the float type and dtype policy after each test."""
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def mnist_dir():
    """The real MNIST test set in idx format (../shared/datasets/mnist), or skip."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    return MNIST_DIR


requires_tensorflow = pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow backend only")


@pytest.fixture
def float64():
    """float64 computation for numerical gradient checks (coursekit.runtime.float64)."""
    from coursekit.runtime import float64 as float64_mode

    with float64_mode():
        yield
