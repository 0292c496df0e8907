"""The training loop: one-cycle Adam, early stopping on the validation split, checkpoints to resume from."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks.checkpoint import TrainingState
from tasks.model import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    TrainProfile,
    build_model,
    model_precision,
    planned_epochs,
    serving_model,
    split_validation,
    weights_fit,
)

if TYPE_CHECKING:
    from tasks.checkpoint import StoreCheckpoints

EARLY_STOPPING_PATIENCE = 3
VALIDATION_BATCH_SIZE = 1024  # Keras' default of 32 made validation ~15% of a fast epoch
MIN_WARMUP_STEPS = 30


@dataclass
class TrainOutcome:
    model: Any
    history: dict[str, list[float]]
    best_epoch: int
    train_seconds: float
    n_train: int
    n_validation: int
    resumed_after_epoch: int = 0  # epochs a killed run had finished before this one took over
    trained_in: str = "float32"  # the precision the weights were trained in (the published model is float32)


def import_tensorflow_in_background() -> threading.Thread:
    """Start importing TensorFlow and Keras on a daemon thread and return it.

    The import costs 8–15 s on two cores, most of a fast run's overhead; started while something else waits (the
    Prefect API coming up), it costs the run almost nothing. A failed import is left for the training step to
    raise again, with its own traceback.
    """

    def load() -> None:
        with contextlib.suppress(Exception):  # the training step imports it again and reports the failure there
            for name in ("tensorflow", "keras"):
                importlib.import_module(name)

    thread = threading.Thread(target=load, name="import-tensorflow", daemon=True)
    thread.start()
    return thread


def _one_cycle(profile: TrainProfile, total_steps: int) -> Any:
    import keras

    # a run of only a few steps (`--epochs 1` on a small batch) warms up over half of them: a one-step warm-up
    # to a high peak throws a fresh network off (12.8% after 9 steps of `fast`, 76% with this)
    warmup = max(1, int(total_steps * profile.warmup_fraction), min(total_steps // 2, MIN_WARMUP_STEPS))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=profile.peak_learning_rate / 20,
        warmup_target=profile.peak_learning_rate,
        warmup_steps=warmup,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.01,
    )


def train_model(
    images: np.ndarray,
    labels: np.ndarray,
    profile: TrainProfile,
    *,
    epochs: int | None = None,
    seed: int = 42,
    callbacks: list[Any] | None = None,
    initial_weights: list[np.ndarray] | None = None,
    checkpoints: StoreCheckpoints | None = None,
    verbose: int = 0,
) -> TrainOutcome:
    """Train with a seeded validation split and early stopping on validation loss, resuming from checkpoints.

    Args:
        images: (N, 28, 28) uint8.
        labels: (N,) integer labels 0–9.
        profile: architecture and optimiser settings.
        epochs: overrides the profile's epoch count.
        seed: seeds Python, NumPy and the backend, and the validation split.
        callbacks: extra Keras callbacks (progress reporting).
        initial_weights: start from these weights (a warm start); shapes must match the profile's model.
        checkpoints: where each epoch is saved; training resumes from the last one found there.
        verbose: Keras fit verbosity.
    """
    import keras

    if len(images) < 2:
        raise ValueError(f"need at least 2 training images, got {len(images)}")
    keras.utils.set_random_seed(seed)
    train_idx, val_idx = split_validation(len(images), seed)
    x_train, y_train = images[train_idx], labels[train_idx].astype("int32")
    x_val, y_val = images[val_idx], labels[val_idx].astype("int32")
    steps_per_epoch = -(-len(x_train) // profile.batch_size)
    n_epochs = epochs or planned_epochs(profile, len(x_train))
    # the one-cycle schedule does its best work at the end: long runs get proportionally more patience
    patience = max(EARLY_STOPPING_PATIENCE, n_epochs // 4)

    resumed = checkpoints.load() if checkpoints is not None else None
    if resumed is not None:
        model, state = resumed.model, resumed.state
    else:
        model, state = build_model(profile), TrainingState(epochs_done=0)
        if initial_weights is not None:
            if not weights_fit(model, initial_weights):
                raise ValueError("initial weights do not fit this profile's architecture")
            model.set_weights(initial_weights)
        model.compile(
            optimizer=keras.optimizers.Adam(_one_cycle(profile, steps_per_epoch * n_epochs)),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=profile.label_smoothing),
            # an instance, unlike "accuracy", creates its variables here; with the optimizer built below, fit's
            # first step traces once instead of twice (TensorFlow retraces a function that created variables)
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        model.optimizer.build(model.trainable_variables)
    resumed_after = state.epochs_done
    early_stopping = _early_stopping(patience, state)
    keeper = _state_keeper(early_stopping, state, checkpoints)
    started = time.perf_counter()
    if state.epochs_done < n_epochs and state.wait < patience:
        model.fit(
            _training_batches(x_train, keras.utils.to_categorical(y_train, NUM_CLASSES), profile, seed).repeat(),
            # with a step count Keras keeps one iterator for the whole fit instead of a new one an epoch
            steps_per_epoch=steps_per_epoch,
            validation_data=_validation_batches(x_val, keras.utils.to_categorical(y_val, NUM_CLASSES)),
            initial_epoch=state.epochs_done,
            epochs=n_epochs,
            shuffle=False,  # the batches are shuffled already
            callbacks=[early_stopping, keeper, *(callbacks or [])],
            verbose=verbose,
        )
    elif state.best_weights is not None:  # a killed run had already finished its epochs
        model.set_weights(state.best_weights)
    train_seconds = time.perf_counter() - started
    val_loss = state.history.get("val_loss", [])
    best_epoch = int(np.argmin(val_loss)) + 1 if val_loss else n_epochs
    return TrainOutcome(
        serving_model(model, profile),
        state.history,
        best_epoch,
        train_seconds,
        len(x_train),
        len(x_val),
        resumed_after_epoch=resumed_after,
        trained_in=model_precision(model),
    )


def _training_batches(images: np.ndarray, targets: np.ndarray, profile: TrainProfile, seed: int) -> Any:
    """One epoch of batches, in a new order each time it is iterated (or repeated); with `shift_pixels`, each
    batch shifted by one random offset.

    Only indices go through the shuffle; whole batches are gathered from the arrays in memory, which is what
    keeps the input pipeline off the critical path on two cores.
    """
    import tensorflow as tf

    pad = profile.shift_pixels
    height, width = IMAGE_SHAPE
    all_images, all_targets = tf.constant(images), tf.constant(targets)

    def gather(indices: Any) -> tuple[Any, Any]:
        batch = tf.gather(all_images, indices)
        if pad:
            padded = tf.pad(batch, [[0, 0], [pad, pad], [pad, pad]])
            offset = tf.random.uniform([2], 0, 2 * pad + 1, dtype=tf.int32)
            batch = padded[:, offset[0] : offset[0] + height, offset[1] : offset[1] + width]
        return batch, tf.gather(all_targets, indices)

    order = tf.data.Dataset.range(len(images)).shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    batches = order.batch(profile.batch_size).map(gather, num_parallel_calls=1).prefetch(2)
    return batches.with_options(_without_autotune())


def _validation_batches(images: np.ndarray, targets: np.ndarray) -> Any:
    import tensorflow as tf

    batches = tf.data.Dataset.from_tensor_slices((images, targets)).batch(VALIDATION_BATCH_SIZE).cache()
    return batches.with_options(_without_autotune())


def _without_autotune() -> Any:
    """tf.data options with autotuning off.

    An autotuned pipeline runs a tuning thread that its iterator waits for when it is destroyed, and Keras drops
    its iterators at every epoch's end (the validation one even with `steps_per_epoch`): the wait stalled an epoch's
    start by 1 to 3 s with both cores idle, one epoch in three (seen in `py-spy dump`:
    `RootDataset::Iterator::~Iterator` in `UnboundedThreadPool::LogicalThreadWrapper`). One gather thread and
    two batches of prefetch keep the CPU busy on their own.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _early_stopping(patience: int, state: TrainingState) -> Any:
    """Keras' early stopping on validation loss, picking up what a killed run's early stopping knew."""
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            super().on_train_begin(logs)
            if state.epochs_done:
                self.best, self.best_epoch, self.wait = state.best, state.best_epoch, state.wait
                self.best_weights = state.best_weights

    return ResumableEarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)


def _state_keeper(early_stopping: Any, state: TrainingState, checkpoints: StoreCheckpoints | None) -> Any:
    """A Keras callback that keeps `state` current after every epoch and checkpoints it when asked to."""
    import keras

    class StateKeeper(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            for name, value in (logs or {}).items():
                state.history.setdefault(name, []).append(float(value))
            state.epochs_done = epoch + 1
            state.best, state.best_epoch, state.wait = (
                early_stopping.best,
                early_stopping.best_epoch,
                early_stopping.wait,
            )
            state.best_weights = early_stopping.best_weights
            if checkpoints is not None:
                checkpoints.save(self.model, state)

    return StateKeeper()
