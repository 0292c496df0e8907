"""The Keras model: builder contract, training on a real MNIST slice, store round trip, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.evaluate import compute_metrics
from tasks.exports import export_model, tflite_predict
from tasks.model import (
    PROFILES,
    build_model,
    get_profile,
    planned_epochs,
    predict_probabilities,
    serving_model,
    split_validation,
)
from tasks.pipeline import load_model, save_model
from tasks.store import open_store
from tasks.training import _one_cycle, train_model


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_model_takes_raw_uint8_pixels_and_returns_probabilities(name: str) -> None:
    model = build_model(get_profile(name))
    assert model.inputs[0].dtype == "uint8"
    assert tuple(model.inputs[0].shape) == (None, 28, 28)
    probabilities = predict_probabilities(model, np.full((3, 28, 28), 255, np.uint8))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


def test_mixed_precision_trains_in_bfloat16_but_publishes_a_float32_model(mnist: dict[str, np.ndarray]) -> None:
    import dataclasses

    import keras

    fast = dataclasses.replace(get_profile("fast"), precision="mixed_bfloat16")  # whatever "auto" picks here
    global_policy = keras.config.dtype_policy().name
    training = build_model(fast)
    assert keras.config.dtype_policy().name == global_policy  # per layer, never the process-wide policy
    convs = [layer for layer in training.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert training.output.dtype == "float32"
    training.set_weights([np.random.default_rng(0).normal(0, 0.1, w.shape) for w in training.get_weights()])

    served = serving_model(training, fast)
    assert {layer.compute_dtype for layer in served.layers if layer.weights} == {"float32"}
    for trained, published in zip(training.get_weights(), served.get_weights(), strict=True):
        np.testing.assert_array_equal(trained, published)
    images = mnist["x_test"][:500]
    bf16, f32 = predict_probabilities(training, images), predict_probabilities(served, images)
    np.testing.assert_allclose(bf16, f32, atol=0.05)  # bf16 keeps ~3 significant digits
    assert (bf16.argmax(axis=1) == f32.argmax(axis=1)).mean() >= 0.98
    nightly = get_profile("nightly")
    float_model = build_model(nightly)
    assert serving_model(float_model, nightly) is float_model
    # the model's layers decide, not the profile: a bf16 checkpoint resumed on a float32 machine still converts
    assert serving_model(training, dataclasses.replace(fast, precision="float32")) is not training


def test_auto_precision_builds_what_this_machine_is_chosen_for() -> None:
    import keras

    from tasks.model import choose_precision, this_hardware

    model = build_model(get_profile("fast"))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.dtype_policy.name for layer in convs} == {choose_precision(this_hardware())}


def test_a_run_of_a_few_steps_still_warms_up_before_its_peak() -> None:
    fast = get_profile("fast")
    short = [float(_one_cycle(fast, total_steps=9)(step)) for step in range(9)]
    assert short[0] < short[1] < short[3] < short[4] == pytest.approx(fast.peak_learning_rate)
    assert short[8] < short[4]
    full = [float(_one_cycle(fast, total_steps=318)(step)) for step in (0, 62, 63, 317)]
    assert full[0] < full[1] < full[2] == pytest.approx(fast.peak_learning_rate)  # the profile's own 20%
    assert full[3] < full[2]


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        get_profile("huge")


def test_small_datasets_get_enough_steps_but_large_ones_keep_the_profile_epochs() -> None:
    fast = get_profile("fast")
    assert planned_epochs(fast, 54_000) == fast.epochs
    small = planned_epochs(fast, 3_600)
    assert small > fast.epochs
    assert small * -(-3_600 // fast.batch_size) >= fast.min_steps


def test_validation_split_is_seeded_disjoint_and_complete() -> None:
    train, val = split_validation(1000, seed=7)
    again_train, again_val = split_validation(1000, seed=7)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)
    assert len(val) == 100 and not set(train) & set(val)
    assert sorted([*train, *val]) == list(range(1000))
    assert not np.array_equal(split_validation(1000, seed=8)[1], val)


def test_training_on_a_real_slice_learns_and_survives_a_store_round_trip(
    mnist: dict[str, np.ndarray], tmp_path: Path
) -> None:
    x, y = mnist["x_train"][:6000], mnist["y_train"][:6000]
    outcome = train_model(x, y, get_profile("fast"), epochs=4, seed=1)
    assert outcome.n_train == 5400 and outcome.n_validation == 600
    assert set(outcome.history) >= {"accuracy", "val_accuracy", "loss", "val_loss"}
    assert 1 <= outcome.best_epoch <= 4
    x_test, y_test = mnist["x_test"][:1000], mnist["y_test"][:1000]
    probabilities = predict_probabilities(outcome.model, x_test)
    accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
    assert accuracy > 0.93, accuracy

    assert {layer.compute_dtype for layer in outcome.model.layers if layer.weights} == {"float32"}
    store = open_store(str(tmp_path))
    save_model(store, "models/v1/model.keras", outcome.model)
    reloaded = load_model(store, "models/v1/model.keras")
    np.testing.assert_allclose(predict_probabilities(reloaded, x_test), probabilities, atol=1e-5)
    # the serving exports answer exactly as the stored model does (no bf16 kernel needed in TFLite)
    export_model(store, "models/v1/", outcome.model)
    np.testing.assert_allclose(tflite_predict(store.get("models/v1/model.tflite"), x_test), probabilities, atol=1e-5)


def test_metrics_match_a_hand_computed_case() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    probabilities = np.full((6, 10), 0.01, np.float32)
    probabilities[np.arange(6), predicted] = 0.91
    metrics = compute_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"][0][:3] == [1, 1, 0]
    assert metrics["confusion_matrix"][2][:3] == [1, 0, 1]
    per_class = {row["digit"]: row for row in metrics["per_class"]}
    assert per_class[1]["precision"] == pytest.approx(2 / 3) and per_class[1]["recall"] == 1.0
    assert per_class[2]["precision"] == 1.0 and per_class[2]["recall"] == 0.5
    assert per_class[5]["support"] == 0 and per_class[5]["f1"] == 0.0
    assert metrics["loss"] > 0
    with pytest.raises(ValueError, match="empty holdout"):
        compute_metrics(np.array([]), np.zeros((0, 10)))


def test_training_batches_cover_every_image_once_an_epoch_and_shift_whole_batches() -> None:
    import dataclasses

    from tasks.training import _training_batches

    n = 300
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 14, 14] = 255  # one lit pixel shows each image's shift
    index = np.arange(n, dtype=np.float32)[:, None]  # the "targets" say which image each row is
    profile = dataclasses.replace(get_profile("nightly"), batch_size=64, shift_pixels=2)
    epochs = []
    steps = -(-n // profile.batch_size)
    batches = iter(_training_batches(images, index, profile, seed=5).repeat())  # what fit does: one iterator
    for _ in range(2):
        seen, offsets = [], set()
        for _step in range(steps):
            batch, targets = next(batches)
            lit = np.argwhere(batch.numpy() == 255)
            assert len(lit) == len(batch)  # a shift of ±2 never pushes the pixel out
            assert len({(y, x) for _, y, x in lit}) == 1  # one offset for the whole batch
            (_, y, x) = lit[0]
            assert abs(y - 14) <= 2 and abs(x - 14) <= 2
            offsets.add((int(y), int(x)))
            seen.extend(int(i) for i in targets.numpy()[:, 0])
        assert sorted(seen) == list(range(n))  # every image exactly once
        assert len(offsets) > 1
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # a new order every epoch
    plain = dataclasses.replace(profile, shift_pixels=0)
    for batch, _ in _training_batches(images, index, plain, seed=5):
        assert (batch.numpy()[:, 14, 14] == 255).all()


def test_input_pipelines_run_without_tf_data_autotuning() -> None:
    """An autotuned pipeline's iterator waits for its tuning thread when destroyed: 1–3 s stalls, cores idle."""
    from tasks.training import _training_batches, _validation_batches

    images, targets = np.zeros((10, 28, 28), np.uint8), np.zeros((10, 10), np.float32)
    training = _training_batches(images, targets, get_profile("fast"), seed=0)
    for pipeline in (training, _validation_batches(images, targets)):
        assert pipeline.options().autotune.enabled is False


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_training_step_is_traced_once(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables created by a step's first trace make TensorFlow trace it again: ~0.6 s of a 10 s fast fit.

    `train_step`'s Python body runs only while TensorFlow traces it, so its calls count the traces.
    """
    import keras

    traces = []
    original = keras.Model.train_step

    def counted(self: keras.Model, data: object) -> object:
        traces.append(1)
        return original(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counted)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (80, 28, 28), dtype=np.uint8), rng.integers(0, 10, 80)
    train_model(images, labels, get_profile(name), epochs=2, seed=0)
    assert len(traces) == 1
