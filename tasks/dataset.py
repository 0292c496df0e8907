"""Assemble the training and holdout sets from the validated batches the manifest lists.

When no holdout was supplied, a content-hash split sends a stable ~10% of every batch to the holdout: the same
image always lands in the same split, whatever batch it came in. Training images identical to a holdout image
are never trained on (leakage), only counted.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from tasks.manifest import Manifest
from tasks.store import Store

HASH_HOLDOUT_BUCKETS = 10  # one bucket of ten goes to the holdout


class NoTrainingData(Exception):
    """Nothing valid to train on (or nothing to evaluate on): the run cannot produce a model."""


@dataclass(frozen=True)
class DatasetSpec:
    """Which stored batches make this run's data: a small record the flow passes between tasks."""

    train_batches: tuple[str, ...]
    holdout_batches: tuple[str, ...]
    digest: str
    n_train_rows: int = 0
    n_holdout_rows: int = 0


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    holdout_source: str  # "supplied" or "hash-split"
    leaked_dropped: int


def dataset_spec(manifest: Manifest) -> DatasetSpec:
    batches = manifest.batches()
    return DatasetSpec(
        train_batches=tuple(b.key for b in batches if b.split == "train"),
        holdout_batches=tuple(b.key for b in batches if b.split == "holdout"),
        digest=manifest.digest(),
        n_train_rows=sum(b.rows for b in batches if b.split == "train"),
        n_holdout_rows=sum(b.rows for b in batches if b.split == "holdout"),
    )


NOTHING_TO_TRAIN = (
    "nothing valid to train on: {rows} training rows after validation; "
    "put CSV, IDX or NPZ files under incoming/ (see quarantine/ for rejected ones)"
)


def unusable_reason(spec: DatasetSpec) -> str | None:
    """Why this data cannot give a model, decided from the manifest's counts before anything is loaded."""
    if spec.n_train_rows < 2:
        return NOTHING_TO_TRAIN.format(rows=spec.n_train_rows)
    return None


def _load_batches(store: Store, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for key in keys:
        with np.load(io.BytesIO(store.get(key)), allow_pickle=False) as batch:
            images.append(batch["images"])
            labels.append(batch["labels"])
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8)
    return np.concatenate(images), np.concatenate(labels)


def image_digests(images: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]


def hash_split(images: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows that belong to the holdout, decided by each image's content alone."""
    return np.fromiter((d[0] % HASH_HOLDOUT_BUCKETS == 0 for d in image_digests(images)), bool, len(images))


def load_dataset(store: Store, spec: DatasetSpec) -> Dataset:
    x_train, y_train = _load_batches(store, spec.train_batches)
    x_holdout, y_holdout = _load_batches(store, spec.holdout_batches)
    if len(x_holdout) == 0:
        # identical images share a digest, hence a side of the split: nothing can leak, so nothing is checked
        mask = hash_split(x_train)
        dataset = Dataset(x_train[~mask], y_train[~mask], x_train[mask], y_train[mask], "hash-split", 0)
    else:
        holdout_digests = set(image_digests(x_holdout))
        keep = np.fromiter((d not in holdout_digests for d in image_digests(x_train)), bool, len(x_train))
        dataset = Dataset(x_train[keep], y_train[keep], x_holdout, y_holdout, "supplied", int((~keep).sum()))
    if len(dataset.x_train) < 2:
        raise NoTrainingData(NOTHING_TO_TRAIN.format(rows=len(dataset.x_train)))
    if len(dataset.x_holdout) == 0:
        raise NoTrainingData("no holdout rows to evaluate on: put files under incoming/holdout/")
    return dataset
