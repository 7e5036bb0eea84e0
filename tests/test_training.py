"""Training side by side: schedules, shared batches, fused engine vs per-variant, divergence."""

import keras
import numpy as np
import pytest

from coursekit import optimizers
from coursekit.data import load_dataset
from coursekit.models import multilayer_net
from coursekit.training import BatchSampler, Variant, make_schedule, train_variants


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300)


def test_reference_schedule_matches_the_reference_loop():
    # overfit_weight_decay: 300 images, batch 100, 201 epochs -> eval after updates 1, 4, 7, ...
    schedule = make_schedule(300, 100, epochs=201)
    assert schedule.iterations == 601 and schedule.iterations_per_epoch == 3
    assert list(schedule.evaluations.items())[:3] == [(1, 0), (4, 1), (7, 2)]
    assert schedule.evaluations[601] == 200
    epoch_schedule = make_schedule(250, 100, epochs=2, sampling="epoch")
    assert epoch_schedule.iterations == 6 and epoch_schedule.evaluations == {3: 1, 6: 2}


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        make_schedule(100, 10)
    with pytest.raises(ValueError, match="batch_size"):
        make_schedule(100, 0, iterations=5)
    with pytest.raises(ValueError, match="Unknown sampling"):
        make_schedule(100, 10, iterations=5, sampling="bootstrap")


def test_epoch_sampling_visits_every_example_once_per_epoch():
    sampler = BatchSampler(10, 5, "epoch", seed=0)
    assert sorted(sampler.take(2).ravel().tolist()) == list(range(10))
    with_replacement = BatchSampler(10, 5, "reference", seed=0).take(100)
    assert with_replacement.shape == (100, 5) and with_replacement.max() < 10


def make_variants(seed=1):
    return [
        Variant(name, multilayer_net(64, [20, 20], weight_decay=0.01, seed=seed), optimizers.get(name))
        for name in ("SGD", "Adam")
    ]


def test_fused_engine_equals_one_train_on_batch_per_variant(digits):
    kwargs = dict(batch_size=32, epochs=3, eval_sets={"test_accuracy": (digits.x_test, digits.y_test)}, verbose=0)
    fused = train_variants(
        make_variants(), digits.x_train, digits.y_train, engine="fused", steps_per_execution=4, **kwargs
    )
    keras.backend.clear_session()
    plain = train_variants(make_variants(), digits.x_train, digits.y_train, engine="per_variant", **kwargs)
    for name in fused:
        np.testing.assert_allclose(fused[name].losses, plain[name].losses, rtol=1e-4, atol=1e-5)
        assert fused[name].metrics == plain[name].metrics
        assert [step for step, _ in fused[name].metrics["test_accuracy"]] == [0, 1, 2]
    assert len(fused["SGD"].losses) == make_schedule(300, 32, epochs=3).iterations


def test_fused_engine_scales_the_loss_as_keras_does(digits):
    """With `loss_scale_factor` the optimizer unscales gradients in `apply`, so the loss must be scaled first."""

    def scaled_variants():
        return [
            Variant(name, multilayer_net(64, [20], seed=1), optimizers.get(name, loss_scale_factor=1024.0))
            for name in ("SGD", "Adam")
        ]

    kwargs = dict(batch_size=32, iterations=12, verbose=0)
    fused = train_variants(scaled_variants(), digits.x_train, digits.y_train, engine="fused", **kwargs)
    keras.backend.clear_session()
    plain = train_variants(scaled_variants(), digits.x_train, digits.y_train, engine="per_variant", **kwargs)
    for name in fused:
        np.testing.assert_allclose(fused[name].losses, plain[name].losses, rtol=1e-4, atol=1e-5)
        assert fused[name].losses[-1] < fused[name].losses[0]


def test_training_learns_and_writes_state_back(digits):
    variants = [
        Variant(name, multilayer_net(64, [50], seed=2), optimizer)
        for name, optimizer in (("SGD", optimizers.SGD(0.1)), ("Adam", optimizers.Adam(0.01)))
    ]
    history = train_variants(
        variants,
        digits.x_train,
        digits.y_train,
        batch_size=50,
        iterations=150,
        eval_sets={"train_accuracy": (digits.x_train, digits.y_train)},
        verbose=0,
    )
    adam = history["Adam"]
    assert adam.losses[-1] < adam.losses[0]
    assert adam.final("train_accuracy") > 0.9  # evaluated once, at the end of the run
    assert list(adam.metrics["train_accuracy"])[0][0] == 150
    predicted = np.argmax(variants[1].model.predict(digits.x_train, verbose=0), axis=1)
    assert np.mean(predicted == digits.y_train) == pytest.approx(adam.final("train_accuracy"))
    assert int(np.asarray(variants[1].optimizer.iterations)) == 150


def test_divergence_is_recorded_and_other_variants_go_on(digits):
    variants = [
        Variant(
            "exploding", multilayer_net(64, [20, 20], weight_init=1e19, seed=0), optimizers.SGD(0.1)
        ),  # logits overflow float32
        Variant("fine", multilayer_net(64, [20], seed=0), optimizers.SGD(0.1)),
    ]
    with pytest.warns(UserWarning, match="'exploding' diverged"):
        history = train_variants(variants, digits.x_train, digits.y_train, batch_size=50, iterations=40, verbose=0)
    assert history["exploding"].diverged_at is not None
    assert history["fine"].diverged_at is None and np.isfinite(history["fine"].losses).all()
    rows = history["exploding"].rows()
    assert {
        "variant": "exploding",
        "step": history["exploding"].diverged_at,
        "metric": "diverged",
        "value": 1.0,
    } in rows


def test_bad_inputs(digits):
    with pytest.raises(ValueError, match="distinct names"):
        train_variants(make_variants() * 2, digits.x_train, digits.y_train, iterations=1, verbose=0)
    with pytest.raises(ValueError, match="rows"):
        train_variants(make_variants(), digits.x_train, digits.y_train[:5], iterations=1, verbose=0)
