"""The evaluate step: challenger and current champion judged on the same holdout, in the same run."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.dataset import DatasetSpec, load_dataset
from tasks.evaluate import compute_metrics
from tasks.gate import ModelEvidence, Paired, mcnemar
from tasks.model import predict_probabilities
from tasks.pipeline import TrainRecord, load_model
from tasks.publish import read_champion, version_key
from tasks.robustness import predict_with_robustness
from tasks.store import ObjectNotFound, Store, open_store


@dataclass(frozen=True)
class EvaluationRecord:
    """What the publish step needs: metrics, gate evidence, where the predictions are, the champion read."""

    metrics: dict[str, Any]
    predictions_key: str
    n_holdout: int
    holdout_source: str
    leaked_dropped: int
    challenger: ModelEvidence
    champion: ModelEvidence | None
    champion_metrics: dict[str, Any] | None
    champion_predictions_key: str | None
    paired: Paired | None
    champion_pointer: dict[str, Any] | None
    champion_etag: str | None


def save_predictions(store: Store, key: str, probabilities: np.ndarray, labels: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, probabilities=probabilities.astype(np.float16), labels=labels)
    store.put(key, buffer.getvalue())


def load_predictions(store: Store, key: str) -> np.ndarray:
    with np.load(io.BytesIO(store.get(key)), allow_pickle=False) as stored:
        return np.asarray(stored["probabilities"], dtype=np.float32)


def _evidence(
    version: str, model: Any, images: np.ndarray, labels: np.ndarray, seed: int
) -> tuple[ModelEvidence, np.ndarray, dict[str, Any]]:
    probabilities, robustness = predict_with_robustness(
        lambda batch: predict_probabilities(model, batch), images, labels, seed
    )
    metrics = compute_metrics(labels, probabilities)
    recall = tuple(row["recall"] for row in metrics["per_class"])
    return ModelEvidence(version, metrics["accuracy"], recall, robustness), probabilities, metrics


def _calibration(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any] | None:
    try:
        from tasks.calibration import calibration_summary
    except ImportError:  # the report computes it itself when absent
        return None
    return calibration_summary(labels, probabilities)


def evaluate(store_uri: str, spec: DatasetSpec, trained: TrainRecord, seed: int = 0) -> EvaluationRecord:
    """Evaluate the trained model and the champion (if any) on the holdout; store both predictions."""
    store = open_store(store_uri)
    dataset = load_dataset(store, spec)
    images, labels = dataset.x_holdout, dataset.y_holdout
    challenger, probabilities, metrics = _evidence(
        trained.version, load_model(store, trained.model_key), images, labels, seed
    )
    metrics["robustness"] = challenger.robustness
    metrics["calibration"] = _calibration(labels, probabilities)
    predictions_key = version_key(trained.version, "holdout_predictions.npz")
    save_predictions(store, predictions_key, probabilities, labels)

    pointer, etag = read_champion(store)
    champion = champion_metrics = champion_key = paired = None
    if pointer is not None:
        try:
            champion_model = load_model(store, version_key(pointer["version"], "model.keras"))
        except ObjectNotFound:
            champion_model = None  # a champion without its model cannot be compared: judged as first run
        if champion_model is not None:
            champion, champion_probabilities, champion_metrics = _evidence(
                pointer["version"], champion_model, images, labels, seed
            )
            champion_metrics = {"version": pointer["version"], **champion_metrics, "robustness": champion.robustness}
            champion_key = version_key(trained.version, "champion_predictions.npz")
            save_predictions(store, champion_key, champion_probabilities, labels)
            paired = mcnemar(probabilities.argmax(1) == labels, champion_probabilities.argmax(1) == labels)
    return EvaluationRecord(
        metrics=metrics,
        predictions_key=predictions_key,
        n_holdout=len(labels),
        holdout_source=dataset.holdout_source,
        leaked_dropped=dataset.leaked_dropped,
        challenger=challenger,
        champion=champion,
        champion_metrics=champion_metrics,
        champion_predictions_key=champion_key,
        paired=paired,
        champion_pointer=pointer,
        champion_etag=etag,
    )
