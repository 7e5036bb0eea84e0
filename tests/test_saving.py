"""A model using every component: fit, save to .keras, load in a fresh process, keep training."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
from conftest import ROOT, checkout_first_env

import coursekit  # noqa: F401  (registers the components)
from coursekit import optimizers
from coursekit.models import classification_loss, multilayer_net


def build_and_fit(path, rng, optimizer):
    x = rng.normal(size=(64, 12)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = multilayer_net(
        12, [16, 16], 2, batch_norm=True, dropout_rate=0.2, weight_decay=1e-3, weight_init="xavier", seed=3
    )
    model.compile(optimizer, classification_loss())
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(path)
    np.save(path.with_suffix(".x.npy"), x)
    np.save(path.with_suffix(".y.npy"), y)
    np.save(path.with_suffix(".pred.npy"), model.predict(x, verbose=0))
    return model


LOAD_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, keras
    import coursekit
    path = sys.argv[1]
    model = keras.models.load_model(path)
    x = np.load(path[:-6] + ".x.npy"); y = np.load(path[:-6] + ".y.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(path[:-6] + ".pred.npy"), rtol=1e-5, atol=1e-6)
    print("optimizer", type(model.optimizer).__name__, int(np.asarray(model.optimizer.iterations)))
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    print("iterations_after", int(np.asarray(model.optimizer.iterations)))
    print("loss", before, model.evaluate(x, y, verbose=0))
    """
)


def test_save_load_in_fresh_process_predict_and_keep_training(tmp_path, rng):
    path = tmp_path / "model.keras"
    build_and_fit(path, rng, optimizers.Adam(0.01))
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    env = checkout_first_env()
    result = subprocess.run(
        [sys.executable, str(script), str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["optimizer"] == "Adam 8"  # 2 epochs x 4 batches, restored
    assert lines["iterations_after"] == "28"
    before, after = map(float, lines["loss"].split())
    assert after < before


def test_optimizer_state_restored_exactly(tmp_path, rng):
    path = tmp_path / "model.keras"
    model = build_and_fit(path, rng, optimizers.AdaGrad(0.05))
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, optimizers.AdaGrad)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for ours, theirs in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
