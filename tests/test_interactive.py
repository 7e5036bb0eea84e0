"""The interactive figures: what they compute, that a moved control redraws them, the static fallback, and
(TensorFlow leg) a real Jupyter kernel driven as a widget front end drives it."""

import base64
import hashlib
import json
import types

import keras
import numpy as np
import pytest
from conftest import BACKEND, checkout_first_env

from coursekit import interactive, optimizers
from coursekit.initializers import He
from coursekit.interactive import ActivationExplorer, OptimizerExplorer, RunExplorer, bowl, keras_builtin
from coursekit.training import optimizer_path

BOOK = {"SGD": (-0.350, 0.085), "Momentum": (0.896, 0.088), "AdaGrad": (-0.120, 0.0), "Adam": (0.136, 0.318)}


@pytest.fixture(scope="module")
def explorer():
    return OptimizerExplorer()


def test_the_bowl_explorer_starts_at_the_books_figure_beside_keras_builtins(explorer):
    paths = explorer.compute(**explorer.initial)
    for name, (x, y) in BOOK.items():
        end = paths[name]["course"][-1]
        assert (round(end[0], 3), round(abs(end[1]), 3)) == (x, y), name
    for name in ("SGD", "Momentum", "Nesterov", "Adam"):  # Keras' built-ins: the same rules
        np.testing.assert_allclose(paths[name]["keras"], paths[name]["course"], atol=1e-5, err_msg=name)
    # AdaGrad differs (Keras' history starts at 0.1); RMSprop only by epsilon inside the root.
    assert np.abs(paths["AdaGrad"]["keras"][-1] - paths["AdaGrad"]["course"][-1]).max() > 0.03
    assert 0 < np.abs(paths["RMSprop"]["keras"][-1] - paths["RMSprop"]["course"][-1]).max() < 1e-4
    if BACKEND in ("tensorflow", "jax"):
        assert set(explorer.modes.values()) == {"compiled"}


def test_every_slider_is_an_input_of_the_compiled_paths(explorer):
    """Paths for other slider values equal 30 eager `apply_gradients` of freshly built optimizers."""
    values = {
        **explorer.initial,
        "SGD learning rate": 0.5,
        "Momentum learning rate": 0.05,
        "Nesterov learning rate": 0.2,
        "AdaGrad learning rate": 0.9,
        "RMSprop learning rate": 0.3,
        "Adam learning rate": 0.2,
        "momentum": 0.5,
        "rho": 0.9,
        "beta_1": 0.7,
        "beta_2": 0.99,
        "start x": 6.0,
        "start y": -3.0,
    }
    paths = explorer.compute(**values)
    start = (6.0, -3.0)
    for name, hyper_names in interactive.HYPERPARAMETERS.items():
        hyper = {key: values[key] for key in hyper_names}
        rate = values[f"{name} learning rate"]
        ours = optimizer_path(getattr(optimizers, name)(rate, **hyper), bowl, start, 30)
        theirs = optimizer_path(keras_builtin(name, rate, **hyper), bowl, start, 30)
        np.testing.assert_allclose(paths[name]["course"], ours, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(paths[name]["keras"], theirs, atol=1e-4, err_msg=name)


def test_moving_a_control_redraws_the_figure(explorer):
    first_png = explorer.widget and bytes(explorer.image.value)
    end = explorer.paths["Momentum"]["course"][-1].copy()
    explorer.set(**{"Momentum learning rate": 0.05})
    assert explorer.error is None and explorer.seconds is not None
    assert bytes(explorer.image.value) != first_png and bytes(explorer.image.value).startswith(b"\x89PNG")
    assert np.abs(explorer.paths["Momentum"]["course"][-1] - end).max() > 0.1
    assert "redrawn in" in explorer.status.value
    with pytest.raises(ValueError, match="unknown control.*valid: SGD learning rate"):
        explorer.set(momentun=0.5)


def test_the_output_carries_the_static_png_beside_the_widget(explorer):
    bundle = explorer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.widget.model_id
    assert base64.b64decode(bundle["image/png"]) == explorer.fallback_png()
    assert explorer.fallback_png().startswith(b"\x89PNG") and "text/plain" in bundle
    assert "text/html" not in bundle


class _Unwritten(optimizers.SGD):
    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError("exercise sgd is not implemented yet: write SGD.update_step")


class _PythonBranch(optimizers.Momentum):
    """Momentum written with a Python `if` on its hyperparameter: not traceable with momentum as an input."""

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum > 0:
            super().update_step(gradient, variable, learning_rate)
        else:
            self.assign_sub(variable, keras.ops.multiply(gradient, learning_rate))


def test_a_students_classes_unwritten_or_untraceable_still_draw():
    classes = types.SimpleNamespace(**{name: getattr(optimizers, name) for name in interactive.OPTIMIZERS})
    classes.SGD, classes.Momentum = _Unwritten, _PythonBranch
    student = OptimizerExplorer(classes=classes)
    png = student.fallback_png()
    assert png.startswith(b"\x89PNG")
    assert student.paths["SGD"]["course"] is None and "exercise sgd is not implemented yet" in student.messages["SGD"]
    assert student.paths["SGD"]["keras"] is not None  # Keras' built-in is still drawn
    reference = optimizer_path(optimizers.Momentum(0.1, momentum=0.9), bowl, (-7.0, 2.0), 30)
    np.testing.assert_allclose(student.paths["Momentum"]["course"], reference, atol=1e-4)
    if BACKEND in ("tensorflow", "jax"):
        assert student.modes["Momentum"] == "eager" and student.modes["Adam"] == "compiled"


def test_current_optimizers_reads_the_file_as_it_is_now(tmp_path):
    import sys

    source = (interactive.current_optimizers().__file__, sys.modules["coursekit.optimizers"])
    text = open(source[0]).read()
    old = "self.assign_sub(variable, ops.multiply(gradient, lr))"
    assert old in text
    path = tmp_path / "optimizers.py"
    path.write_text(text.replace(old, "self.assign_sub(variable, ops.multiply(gradient, 0.5 * lr))"))
    halved = OptimizerExplorer(classes=interactive.current_optimizers(path), names=("SGD",))
    halved.compute(**halved.initial)
    reference = optimizer_path(optimizers.SGD(0.95 * 0.5), bowl, (-7.0, 2.0), 30)
    np.testing.assert_allclose(halved.paths["SGD"]["course"], reference, atol=1e-5)
    assert sys.modules["coursekit.optimizers"] is source[1]  # the imported module stays
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizers.SGD(0.1)))
    assert type(restored) is optimizers.SGD  # and so do its classes in Keras' registry


def test_the_activation_explorer_computes_the_labs_experiment():
    explorer = ActivationExplorer(samples=200, seed=3)
    he = explorer.compute("He", 1.0)
    x = np.random.default_rng(3).standard_normal((200, 100)).astype("float32")
    init = He(seed=keras.random.SeedGenerator(3))
    for layer in range(5):  # the lab's Dense layers without bias, drawing from one seed generator in turn
        x = keras.layers.Dense(100, use_bias=False, kernel_initializer=init, activation="relu")(x)
        np.testing.assert_allclose(he["relu"][layer], keras.ops.convert_to_numpy(x), rtol=1e-5, atol=1e-6)
    small, large = explorer.compute("std", 0.01), explorer.compute("std", 1.0)
    assert small["sigmoid"][-1].std() < 0.02 and large["sigmoid"][-1].std() > 0.4
    assert small["relu"][-1].std() < 1e-4 and he["relu"][-1].std() > 0.5 * he["relu"][0].std()
    # One draw, rescaled: ReLU's first layer scales with the slider's std.
    np.testing.assert_allclose(
        explorer.compute("std", 0.2)["relu"][0], 2 * explorer.compute("std", 0.1)["relu"][0], rtol=1e-5
    )
    first = explorer.render("std", 1.0)
    assert bytes(explorer.set(rule="Xavier").image.value) != first
    assert bytes(explorer.set(rule="std", std=0.05).image.value) not in (first, explorer.render("Xavier", 1.0))


def test_the_run_explorer_steps_through_precomputed_runs():
    calls = []

    def panels(value):
        calls.append(value)
        return [{"title": f"run {value}", "lines": [interactive.plots.Line([0, 1], [0, value])]}]

    explorer = RunExplorer("lambda", interactive.log_options([0.01, 0.1, 1.0]), panels, initial=0.1)
    assert explorer.fallback_png() == explorer.render(0.1) and calls == [0.1]  # drawn once, then kept
    explorer.set(run=1.0)
    assert calls == [0.1, 1.0] and bytes(explorer.image.value) == explorer.render(1.0)
    assert [label for label, _ in explorer.options] == ["0.01", "0.1", "1"]
    with pytest.raises(ValueError, match="initial=0.5 is not one of the options"):
        RunExplorer("lambda", [("a", 1.0)], panels, initial=0.5)
    with pytest.raises(ValueError, match="at least one option"):
        RunExplorer("lambda", [], panels)


KERNEL_CELLS = [
    "from coursekit.interactive import OptimizerExplorer\nexplorer = OptimizerExplorer()\nexplorer",
    "import hashlib, json\n"
    "slider = explorer.controls['Momentum learning rate']\n"
    "steps = [value for _, value in slider.options]\n"
    "print(json.dumps({'slider': slider.model_id, 'index': min(range(len(steps)), key=lambda i: abs(steps[i] - 0.05)), "
    "'end': explorer.paths['Momentum']['course'][-1].tolist(), "
    "'png': hashlib.sha256(explorer.image.value).hexdigest(), 'widget': explorer.widget.model_id}))",
]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="kernel runs are in the TensorFlow leg")
def test_in_a_real_kernel_a_slider_moved_by_the_front_end_redraws_the_path(tmp_path, monkeypatch):
    """The kernel gets the comm message a browser sends when the Momentum slider moves, and redraws."""
    import nbclient
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    monkeypatch.setenv("PYTHONPATH", checkout_first_env()["PYTHONPATH"])
    notebook = new_notebook(cells=[new_code_cell(source) for source in [*KERNEL_CELLS, KERNEL_CELLS[1]]])
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )

    def printed(index):
        return json.loads(notebook.cells[index].outputs[-1]["text"])

    with client.setup_kernel():
        client.execute_cell(notebook.cells[0], 0)
        client.execute_cell(notebook.cells[1], 1)
        before = printed(1)
        message = client.kc.session.msg(
            "comm_msg",
            {
                "comm_id": before["slider"],
                "data": {"method": "update", "state": {"index": before["index"]}, "buffer_paths": []},
            },
        )
        client.kc.shell_channel.send(message)  # what the widget front end sends when the slider moves (a step's index)
        client.execute_cell(notebook.cells[2], 2)
        after = printed(2)
    assert np.abs(np.subtract(after["end"], before["end"])).max() > 0.1 and after["png"] != before["png"]
    [shown] = [o for o in notebook.cells[0].outputs if "image/png" in o.get("data", {})]
    assert shown["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == before["widget"]
    png = base64.b64decode(shown["data"]["image/png"])  # what a notebook without widgets shows
    assert png.startswith(b"\x89PNG") and hashlib.sha256(png).hexdigest() == before["png"]
    nbformat.validate(notebook)
