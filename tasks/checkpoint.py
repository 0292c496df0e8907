"""Training checkpoints under the store, so a run killed mid-training resumes where it stopped, on any worker.

A checkpoint folder is named after everything that decides the training (dataset digest, profile, epochs, seed,
warm start), never after the run: the next run with the same inputs finds it. Each epoch writes the full model
(weights and optimiser state), the best weights so far, and then `state.json`, which names them. `state.json` is
written last, so a reader never follows it to a file that is not there yet; a run killed while writing simply
resumes from the epoch before.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tasks.store import ObjectNotFound, Store, delete_folder

CHECKPOINTS = "checkpoints/"
STATE_FILE = "state.json"
ABANDONED_AFTER = timedelta(days=1)  # no training goes a day without finishing an epoch


def checkpoint_prefix(identity: dict[str, Any]) -> str:
    """The store folder for one training identity (same dataset, profile, epochs, seed → same folder)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return f"{CHECKPOINTS}{digest}/"


@dataclass
class TrainingState:
    """What a resumed run needs besides the model: where it was and what early stopping knew."""

    epochs_done: int
    history: dict[str, list[float]] = field(default_factory=dict)
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0
    best_weights: list[np.ndarray] | None = None


@dataclass
class Resumed:
    model: Any  # compiled, with the optimiser's state (step count, moments) as it was
    state: TrainingState


class StoreCheckpoints:
    """Reads and writes one training identity's checkpoints in a store."""

    def __init__(self, store: Store, prefix: str, log: Callable[[str], None] = lambda message: None) -> None:
        self.store = store
        self.prefix = prefix
        self.log = log

    def load(self) -> Resumed | None:
        """The last complete checkpoint, or None when there is none (or it cannot be read back)."""
        import keras

        try:
            state = json.loads(self.store.get(self.prefix + STATE_FILE))
            model_bytes = self.store.get(self.prefix + state["model"])
            best_weights = _weights_from_npz(self.store.get(self.prefix + state["best_weights"]))
        except (ObjectNotFound, KeyError, ValueError):
            return None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "checkpoint.keras"
            path.write_bytes(model_bytes)
            model = keras.saving.load_model(path, safe_mode=True)
        training = TrainingState(
            epochs_done=int(state["epochs_done"]),
            history={k: [float(v) for v in values] for k, values in state["history"].items()},
            best=state["best"],
            best_epoch=int(state["best_epoch"]),
            wait=int(state["wait"]),
            best_weights=best_weights,
        )
        self.log(f"resuming training after epoch {training.epochs_done} from the checkpoint in {self.prefix}")
        return Resumed(model, training)

    def save(self, model: Any, state: TrainingState) -> None:
        """Store the model after `state.epochs_done` epochs, then the state that names it."""
        model_key = f"epoch-{state.epochs_done:04d}.keras"
        best_key = f"best-{state.best_epoch + 1:04d}.npz"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / model_key
            model.save(path)
            self.store.put(self.prefix + model_key, path.read_bytes())
        if state.best_weights is not None and not self.store.exists(self.prefix + best_key):
            self.store.put(self.prefix + best_key, _weights_to_npz(state.best_weights))
        document = {
            "epochs_done": state.epochs_done,
            "model": model_key,
            "best_weights": best_key,
            "history": state.history,
            "best": state.best,
            "best_epoch": state.best_epoch,
            "wait": state.wait,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.store.put(self.prefix + STATE_FILE, json.dumps(document).encode(), "application/json")
        self._forget(keep={STATE_FILE, model_key, best_key})

    def clear(self) -> None:
        """Remove the checkpoints once the trained model itself is stored."""
        delete_folder(self.store, self.prefix)

    def _forget(self, keep: set[str]) -> None:
        for info in self.store.list(self.prefix):
            if info.key.removeprefix(self.prefix) not in keep:
                self.store.delete(info.key)


def _weights_to_npz(weights: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, *weights)
    return buffer.getvalue()


def _weights_from_npz(data: bytes) -> list[np.ndarray]:
    # plain arrays only: a checkpoint is read back without unpickling anything
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def abandoned_checkpoints(store: Store, now: datetime, older_than: timedelta = ABANDONED_AFTER) -> dict[str, str]:
    """Checkpoint folders no training has written to for `older_than`: {folder: last saved}.

    A killed run whose inputs then changed never resumes; its folder would stay forever. A folder is judged by its
    `state.json`'s `saved_at`; one without a readable `state.json` (killed in its first epoch, before the state
    was written) by its newest file, so a training in its first epoch is left alone but a dead one is not kept.
    """
    abandoned: dict[str, str] = {}
    judged_by_state: set[str] = set()
    newest_file: dict[str, datetime] = {}
    for info in store.list(CHECKPOINTS):
        folder = CHECKPOINTS + info.key.removeprefix(CHECKPOINTS).split("/", 1)[0] + "/"
        if info.modified is not None:
            newest_file[folder] = max(info.modified, newest_file.get(folder, info.modified))
        if not info.key.endswith("/" + STATE_FILE):
            continue
        try:
            saved_at = datetime.fromisoformat(json.loads(store.get(info.key))["saved_at"])
        except (ObjectNotFound, KeyError, ValueError, TypeError):
            continue
        judged_by_state.add(folder)
        if now - saved_at > older_than:
            abandoned[folder] = saved_at.isoformat()
    for folder, written in newest_file.items():
        if folder not in judged_by_state and now - written > older_than:
            abandoned[folder] = written.isoformat(timespec="seconds")
    return dict(sorted(abandoned.items()))
