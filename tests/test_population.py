"""Populations: members equal the same models trained one by one; one compilation; state always written back."""

import keras
import numpy as np
import pytest
from conftest import BACKEND

from coursekit import optimizers, population, runtime, training
from coursekit.data import load_dataset
from coursekit.models import classification_loss, multilayer_net
from coursekit.training import Variant, train_variants

# (seed, learning rate, weight decay, dropout rate, momentum): one architecture, five members.
MEMBERS = [(1, 0.05, 1e-2, 0.2, 0.9), (2, 0.1, 1e-3, 0.1, 0.5), (3, 0.02, 1e-1, 0.3, 0.8), (4, 0.05, 1e-4, 0.25, 0.0)]
DIVERGING = (5, 1e9, 1e-2, 0.2, 0.9)  # a learning rate that blows the loss up


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300)


def member(seed, learning_rate, lam, rate, momentum, ema=False):
    """A trial as the search makes one: seeded, then built; its own minibatch order (`seed`)."""
    runtime.seed_everything(seed)
    model = multilayer_net(64, [16, 16], batch_norm=True, dropout_rate=rate, weight_decay=lam)
    optimizer = optimizers.Momentum(learning_rate, momentum=momentum, use_ema=ema)
    return Variant(f"member{seed}", model, optimizer, seed=seed)


def train(variants, digits, engine):
    return train_variants(
        variants,
        digits.x_train,
        digits.y_train,
        batch_size=32,
        epochs=3,
        sampling="epoch",
        eval_sets={"test_accuracy": (digits.x_test, digits.y_test)},
        verbose=0,
        engine=engine,
    )


@pytest.mark.parametrize(
    "ema,dropout", [(False, True), (True, True), (False, False)], ids=["plain", "ema", "no-dropout"]
)
def test_population_members_equal_the_same_models_trained_one_by_one(digits, ema, dropout):
    """BatchNorm, Dropout (each member's own masks), weight decay, momentum, EMA; a diverging member apart.

    Without dropout the population is compiled with XLA on TensorFlow too.
    """
    configs = [(seed, lr, lam, rate if dropout else 0.0, m) for seed, lr, lam, rate, m in [*MEMBERS, DIVERGING]]
    *configs, diverging_config = configs
    members = [member(*config, ema=ema) for config in configs]
    diverging = member(*diverging_config, ema=ema)
    with pytest.warns(UserWarning, match="'member5' diverged"):
        together = train([*members, diverging], digits, engine="population")
    assert together["member5"].diverged_at is not None
    for config, trained in zip(configs, members):
        alone = member(*config, ema=ema)
        by_itself = train([alone], digits, engine="fused")[alone.name]
        history = together[trained.name]
        assert history.diverged_at is None
        np.testing.assert_allclose(history.losses, by_itself.losses, rtol=1e-5, atol=1e-6)
        assert history.metrics == by_itself.metrics
        for ours, theirs in zip(trained.model.variables, alone.model.variables):  # BN statistics, dropout seeds
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5, err_msg=ours.path)
        for ours, theirs in zip(trained.optimizer.variables, alone.optimizer.variables):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5, err_msg=ours.path)


def test_one_compilation_serves_every_population_of_an_architecture(digits):
    """Learning rate, decay, dropout rate and momentum are inputs of the program, not constants in it.

    (On PyTorch the pieces are traced into `torch.fx` graphs once, as the other backends compile them.)
    """
    first = [member(*config) for config in MEMBERS]
    train(first, digits, engine="population")
    program = population.Engine(first, group=True, cache=True).program
    traces = program.traces
    second = [member(seed + 10, lr * 2, lam / 3, rate / 2, momentum / 2) for seed, lr, lam, rate, momentum in MEMBERS]
    train(second, digits, engine="population")
    assert population.Engine(second, group=True, cache=True).program is program
    assert 1 <= traces <= 3 and program.traces == traces  # (a step, counts; on a GPU one program) traced once


def test_architecture_tells_what_one_program_can_train():
    def key(**kwargs):
        config = {"seed": 1, "learning_rate": 0.1, "lam": 1e-3, "rate": 0.2, "momentum": 0.9, **kwargs}
        variant = member(*config.values())
        return population.architecture(variant.model, variant.optimizer)

    same = key()
    assert key(seed=2, learning_rate=0.5, lam=1e-1, rate=0.4, momentum=0.5) == same
    assert key(rate=0.0) != same
    assert key(lam=0.0) != same and key(momentum=0.0) != same  # zero: no such op
    runtime.seed_everything(1)
    other = multilayer_net(64, [16, 16], weight_decay=1e-3)  # no BatchNorm
    assert population.architecture(other, optimizers.Momentum(0.1)) != same
    assert population.architecture(other, optimizers.Adam(0.1)) != population.architecture(other, optimizers.SGD(0.1))
    compiled = multilayer_net(64, [16, 16], weight_decay=1e-3)
    compiled.compile(optimizers.SGD(0.1), "mse")
    assert population.architecture(compiled, compiled.optimizer) != population.architecture(other, optimizers.SGD(0.1))


@pytest.mark.parametrize("engine", ["fused", "population"])
def test_ema_weights_are_written_back_at_the_end(digits, engine):
    variant = member(1, 0.05, 1e-3, 0.2, 0.9, ema=True)
    train([variant], digits, engine=engine)
    averages = [v for v in variant.optimizer.variables if v.path.endswith("_average")]
    assert len(averages) == len(variant.model.trainable_variables)
    for weight, average in zip(variant.model.trainable_variables, averages):
        np.testing.assert_array_equal(weight.numpy(), average.numpy())
    plain = member(1, 0.05, 1e-3, 0.2, 0.9)
    train([plain], digits, engine=engine)
    assert not np.allclose(plain.model.trainable_variables[0].numpy(), variant.model.trainable_variables[0].numpy())


@pytest.mark.parametrize("engine", ["fused", "population"])
def test_an_error_between_chunks_leaves_every_model_with_its_last_trained_state(digits, monkeypatch, engine):
    """The state goes back into the Keras variables in a `finally`: none is left holding a donated buffer."""
    calls = {"n": 0}
    record = training._record_losses

    def fail_on_the_third_chunk(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return record(*args)

    monkeypatch.setattr(training, "_record_losses", fail_on_the_third_chunk)
    variants = [member(*config) for config in MEMBERS[:2]]
    with pytest.raises(KeyboardInterrupt):
        train_variants(
            variants, digits.x_train, digits.y_train, batch_size=32, iterations=20, steps_per_execution=4, verbose=0,
            engine=engine,
        )  # fmt: skip
    for variant in variants:
        assert int(variant.optimizer.iterations.numpy()) == 12  # three chunks of 4 steps ran
        predictions = variant.model.predict(digits.x_test, verbose=0)  # every variable is readable
        assert np.isfinite(predictions).all()


def test_a_failed_call_keeps_the_last_state_it_completed(digits):
    """The evaluation after the second chunk fails: its steps were done (a Python loop over steps: PyTorch, a
    convnet on a CPU) or not (one compiled program per chunk)."""
    variants = [member(*config) for config in MEMBERS[:2]]
    with pytest.raises(Exception):  # noqa: B017  (the backends raise different types for a shape mismatch)
        train_variants(
            variants, digits.x_train, digits.y_train, batch_size=32, iterations=8, eval_every=8,
            steps_per_execution=5, eval_sets={"bad": (digits.x_test[:, :10], digits.y_test)}, verbose=0,
            engine="population",
        )  # fmt: skip
    completed = 8 if population._backend().host_loop == "host" else 5  # MLPs: their loops in the program but on PyTorch
    for variant in variants:
        assert int(variant.optimizer.iterations.numpy()) == completed
        assert np.isfinite(variant.model.predict(digits.x_test, verbose=0)).all()


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's tracer")
def test_pytorch_traces_a_piece_once_per_signature_and_replays_it():
    import torch

    runs = []

    def piece(state, x):
        runs.append(tuple(x.shape))
        return {"sum": [state[0] + x.sum()], "scaled": x * state[1]}

    traced = population._backend().jit(piece)
    state = [torch.tensor(1.0), torch.tensor(3.0)]
    for x in (torch.arange(4.0), torch.arange(4.0) + 10, torch.ones(2, 2)):
        out = traced(state, x)
        torch.testing.assert_close(out["sum"][0], state[0] + x.sum())  # the values of this call, not the trace's
        torch.testing.assert_close(out["scaled"], x * 3.0)
    assert runs == [(4,), (2, 2)]  # Python ran once per signature


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's tracer")
def test_pytorch_runs_a_piece_that_reads_a_value_eagerly(digits):
    """A branch on a tensor's value (Keras' seeded dropout reads its seed) is never frozen into a graph."""
    import torch

    def piece(x):
        return x * 2 if float(x.sum()) > 0 else x - 1

    eager_before = population.stats().get("eager", 0)
    traced = population._backend().jit(piece)
    torch.testing.assert_close(traced(torch.ones(3)), torch.full((3,), 2.0))
    torch.testing.assert_close(traced(-torch.ones(3)), torch.full((3,), -2.0))
    assert population.stats()["eager"] == eager_before + 1
    noisy = keras.Sequential([keras.Input((64,)), keras.layers.GaussianNoise(0.1, seed=1), keras.layers.Dense(10)])
    noisy.compile(optimizers.SGD(0.01), classification_loss(), metrics=["accuracy"])
    train([Variant("noisy", noisy, noisy.optimizer, seed=1)], digits, engine="population")  # Keras' normal(seed)
    assert population.stats()["eager"] > eager_before + 1


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's tracer")
def test_pytorch_vectorizes_and_traces_dropout_with_each_members_masks(digits):
    """The course's Dropout and Keras' draw through one custom op: one group, traced, not eager.

    That the masks are each member's own, and `fit`'s, the one-by-one tests above and
    tests/test_fitting.py hold on PyTorch too; here, that the population is one traced program.
    """
    variants = [member(*config) for config in MEMBERS[:3]]  # (the fourth's momentum 0: another architecture)
    assert len({population.architecture(v.model, v.optimizer) for v in variants}) == 1
    noisy = [keras.Sequential([keras.Input((4,)), keras.layers.GaussianNoise(0.1)]) for _ in range(2)]
    assert len({population.architecture(m, optimizers.SGD(0.1)) for m in noisy}) == 2  # noise layers: alone
    eager_before = population.stats().get("eager", 0)
    train(variants, digits, engine="population")
    assert population.stats().get("eager", 0) == eager_before
