"""The benchmark's contenders: the seed-like dense net, the keras-io simple convnet, and our profiles.

Every contender trains on the same 54k/6k train/validation split of the official 60k and is scored on the
official 10k test set. Test accuracy is tracked after every epoch for the time-to-accuracy figures only; no
choice anywhere depends on it, and the time spent measuring it is taken out of the fit seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tasks.model import NUM_CLASSES, get_profile, predict_probabilities, split_validation
from tasks.training import train_model

SEED_LIKE_EPOCHS = 10
SEED_LIKE_BATCH = 128
KERAS_IO_EPOCHS = 15
KERAS_IO_BATCH = 128
MILESTONES = (0.98, 0.99)


@dataclass
class Result:
    name: str
    fit_seconds: float
    test_accuracy: float
    epochs_run: int
    n_train: int
    curve: list[tuple[float, float]] = field(default_factory=list)  # (fit seconds so far, test accuracy)
    seeds: list[int] = field(default_factory=list)
    per_seed: list[dict[str, Any]] = field(default_factory=list)

    def seconds_to(self, accuracy: float) -> float | None:
        return next((round(seconds, 2) for seconds, reached in self.curve if reached >= accuracy), None)

    @property
    def images_per_second(self) -> float:
        return self.n_train * self.epochs_run / self.fit_seconds if self.fit_seconds else 0.0

    def record(self) -> dict[str, Any]:
        return {
            "fit_seconds": round(self.fit_seconds, 2),
            "test_accuracy": round(self.test_accuracy, 4),
            "epochs_run": self.epochs_run,
            "n_train": self.n_train,
            "images_per_second": round(self.images_per_second, 1),
            **{f"seconds_to_{round(m * 100)}": self.seconds_to(m) for m in MILESTONES},
            "curve": [[round(s, 2), round(a, 4)] for s, a in self.curve],
            "seeds": self.seeds,
            **({"per_seed": self.per_seed} if self.per_seed else {}),
        }


def test_tracker(x_test: np.ndarray, y_test: np.ndarray) -> Any:
    """A callback that scores the test set after every epoch and keeps its own time out of the fit time."""
    import keras

    class TestTracker(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.curve: list[tuple[float, float]] = []
            self.excluded = 0.0
            self.started = 0.0

        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            now = time.perf_counter()
            accuracy = float((predict_probabilities(self.model, x_test).argmax(axis=1) == y_test).mean())
            self.curve.append((now - self.started - self.excluded, accuracy))
            self.excluded += time.perf_counter() - now

    return TestTracker()


def seed_like_net() -> Any:
    """The seed notebook's dense network: Dense 128 → Dropout 0.2 → Dense 64 → Dropout 0.2 → softmax."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28), dtype="uint8"),
            layers.Rescaling(1.0 / 255.0),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="seed_like",
    )


def keras_io_convnet() -> Any:
    """keras.io's "Simple MNIST convnet" example, layer for layer."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28), dtype="uint8"),
            layers.Rescaling(1.0 / 255.0),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="keras_io_convnet",
    )


def run_reference(
    name: str, data: dict[str, np.ndarray], seed: int, epochs: int, batch_size: int, quick: bool
) -> Result:
    """Train a reference net with Adam and plain cross-entropy, as its original does."""
    import keras

    keras.utils.set_random_seed(seed)
    model = seed_like_net() if name == "seed-like" else keras_io_convnet()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train, val = split_validation(len(data["x_train"]), seed)
    tracker = test_tracker(data["x_test"], data["y_test"])
    started = time.perf_counter()
    model.fit(
        data["x_train"][train],
        data["y_train"][train],
        validation_data=(data["x_train"][val], data["y_train"][val]),
        epochs=1 if quick else epochs,
        batch_size=batch_size,
        callbacks=[tracker],
        verbose=0,
    )
    fit = time.perf_counter() - started - tracker.excluded
    return Result(name, fit, tracker.curve[-1][1], len(tracker.curve), len(train), tracker.curve, [seed])


def run_profile(name: str, data: dict[str, np.ndarray], seed: int, quick: bool) -> Result:
    """Train one of our profiles exactly as the retrain flow does (same function, same split)."""
    tracker = test_tracker(data["x_test"], data["y_test"])
    outcome = train_model(
        data["x_train"], data["y_train"], get_profile(name), epochs=1 if quick else None, seed=seed, callbacks=[tracker]
    )
    probabilities = predict_probabilities(outcome.model, data["x_test"])
    accuracy = float((probabilities.argmax(axis=1) == data["y_test"]).mean())  # best weights restored
    fit = outcome.train_seconds - tracker.excluded
    return Result(name, fit, accuracy, len(tracker.curve), outcome.n_train, tracker.curve, [seed])


def mean_of(results: list[Result]) -> Result:
    """One row for several seeds: mean fit seconds and accuracy, the first seed's curve."""
    first = results[0]
    return Result(
        first.name,
        float(np.mean([r.fit_seconds for r in results])),
        float(np.mean([r.test_accuracy for r in results])),
        first.epochs_run,
        first.n_train,
        first.curve,
        [s for r in results for s in r.seeds],
        [r.record() | {"seed": r.seeds[0]} for r in results] if len(results) > 1 else [],
    )
