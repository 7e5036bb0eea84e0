"""Seeds, the device in use, mixed precision and float64: one place for each."""

import contextlib
import os
import platform
import random

import keras
import numpy as np

from coursekit import keras_internals
from coursekit.quiet import quiet_stderr


def seed_everything(seed):
    """Seed Python's `random`, NumPy and Keras (and the backend) with one integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; received seed={seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    with quiet_stderr():  # on JAX this also seeds (and so first loads) TensorFlow, if installed
        keras.utils.set_random_seed(int(seed))
    return int(seed)


def gpu_names():
    """Names of the accelerators the active Keras backend sees (empty on a CPU)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def device_report():
    """The backend and device this process trains on, for config.json and the console."""
    gpus = gpu_names()
    return {
        "backend": keras.backend.backend(),
        "device": f"GPU: {', '.join(gpus)}" if gpus else f"CPU ({os.cpu_count()} cores)",
        "dtype_policy": keras.config.dtype_policy().name,
        "platform": platform.platform(),
    }


def set_mixed_precision(enabled):
    """Turn Keras mixed precision on ("mixed_float16" on a GPU, "mixed_bfloat16" on a CPU) or off.

    Call it inside a keras-tuner model-building function: the tuner clears the
    session, and with it the global policy, before every trial.
    """
    if not enabled:
        keras.config.set_dtype_policy("float32")
        return "float32"
    policy = "mixed_float16" if gpu_names() else "mixed_bfloat16"
    keras.config.set_dtype_policy(policy)
    return policy


def full_float32_matmuls():
    """Multiply float32 matrices in full float32 on a GPU, not in TF32.

    NVIDIA GPUs since Ampere (A100, H100; Colab's L4 and A100) multiply float32 matrices in
    TF32 by default, in TensorFlow and in JAX: a 10-bit mantissa, relative error about 1e-3
    per product. That is fine for training, but two computations that agree to float32
    round-off on a CPU (the population engine and one model at a time, say) then differ by
    about 1e-3. The tests call this; on a CPU it changes nothing.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def package_versions():
    """Versions of the packages a result depends on."""
    import importlib.metadata as metadata

    names = ["coursekit", "keras", "tensorflow", "jax", "jaxlib", "torch", "keras-tuner", "numpy"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@contextlib.contextmanager
def float64():
    """Compute in float64 inside the block (gradient checks); the previous settings come back after.

    Sets Keras' floatx *and* the global dtype policy (layers take their dtype from the
    policy, which a first layer fixes from floatx), JAX's 64-bit mode, and Keras' type promotion
    to keep float64 (`coursekit.keras_internals.keep_float64`).
    """
    previous_floatx, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    jax_x64 = None
    if keras.backend.backend() == "jax":
        import jax

        jax_x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        with keras_internals.keep_float64():  # else PyTorch's ops.matmul returns float32 values
            yield
    finally:
        keras.config.set_dtype_policy(previous_policy)
        keras.config.set_floatx(previous_floatx)
        if jax_x64 is not None:
            import jax

            jax.config.update("jax_enable_x64", jax_x64)
