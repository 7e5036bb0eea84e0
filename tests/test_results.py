"""Result files and the reference smoothing."""

import json

import numpy as np
import pytest

from coursekit import results, runtime


def reference_smooth_curve(x):
    """Verbatim formula of the reference code (common/util.py)."""
    window_len = 11
    s = np.r_[x[window_len - 1 : 0 : -1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5 : len(y) - 5]


def test_smooth_curve_equals_reference(rng):
    values = rng.normal(size=200).cumsum()
    smoothed = results.smooth_curve(values)
    np.testing.assert_allclose(smoothed, reference_smooth_curve(values))
    assert len(smoothed) == 200
    assert np.std(np.diff(smoothed)) < np.std(np.diff(values))


def test_results_csv_round_trip_with_factor_columns(tmp_path):
    rows = [{"variant": "bn", "weight_scale": 0.01, "step": 1, "metric": "train_accuracy", "value": np.float32(0.5)}]
    path = results.write_results(tmp_path / "out" / "results.csv", rows, extra_columns=["weight_scale"])
    assert path.read_text().splitlines()[0] == "variant,weight_scale,step,metric,value"
    frame = results.load(path.parent)
    assert frame.to_dict(orient="records") == [
        {"variant": "bn", "weight_scale": 0.01, "step": 1, "metric": "train_accuracy", "value": 0.5}
    ]
    assert str(frame["step"].dtype) == "int64" and str(frame["value"].dtype) == "float64"
    with pytest.raises(OSError, match="no results file"):
        results.load(tmp_path / "nowhere")


def test_json_is_strict_nan_becomes_null(tmp_path):
    path = results.write_json(tmp_path / "config.json", {"loss": float("nan"), "values": [np.float32(1.5), np.inf]})
    assert json.loads(path.read_text()) == {"loss": None, "values": [1.5, None]}
    assert "NaN" not in path.read_text()


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "config.json"
    results.write_json(target, {"seed": 3})

    class Boom:
        pass

    with pytest.raises(TypeError):
        results.write_json(target, {"bad": Boom()})
    assert json.loads(target.read_text()) == {"seed": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_seed_everything_reproduces_draws_and_rejects_bad_seeds():
    runtime.seed_everything(7)
    first = np.random.rand(3)
    runtime.seed_everything(7)
    np.testing.assert_array_equal(first, np.random.rand(3))
    for bad in (-1, 1.5, "x"):
        with pytest.raises(ValueError, match="seed"):
            runtime.seed_everything(bad)


def test_device_report_and_versions():
    report = runtime.device_report()
    assert report["backend"] in ("tensorflow", "jax", "torch")
    assert report["device"].startswith(("CPU", "GPU"))
    assert "keras" in runtime.package_versions()


def test_full_float32_matmuls_turns_tf32_off_for_the_backend():
    import keras

    runtime.full_float32_matmuls()  # conftest already did; calling again is harmless
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        assert not tf.config.experimental.tensor_float_32_execution_enabled()
    elif keras.backend.backend() == "jax":
        import jax

        assert jax.config.jax_default_matmul_precision == "highest"


def test_float64_block_overrides_a_fixed_float32_policy_and_restores_it():
    import keras

    keras.config.set_dtype_policy("float32")  # a policy fixed earlier, as after any first layer
    with runtime.float64():
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        assert layer.kernel.dtype == "float64" and keras.config.floatx() == "float64"
    assert keras.config.dtype_policy().name == "float32" and keras.config.floatx() == "float32"
