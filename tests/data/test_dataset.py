"""Assembling the training and holdout sets from validated batches: at MNIST scale, and without leakage."""

from __future__ import annotations

import numpy as np
from builders import digits, npz_bytes

from tasks.dataset import dataset_spec, load_dataset
from tasks.ingest import ingest
from tasks.manifest import load_manifest
from tasks.store import open_store

N_TRAIN, N_HOLDOUT, N_LEAKED = 60_000, 10_000, 5


def test_seventy_thousand_rows_load_whole_in_order_and_without_leakage(tmp_path: object) -> None:
    x, y = digits(N_TRAIN + N_HOLDOUT, seed=9)
    x[:N_LEAKED] = x[N_TRAIN : N_TRAIN + N_LEAKED]  # training copies of holdout images: never trained on
    store = open_store(str(tmp_path))
    arrays = {"x_train": x[:N_TRAIN], "y_train": y[:N_TRAIN], "x_test": x[N_TRAIN:], "y_test": y[N_TRAIN:]}
    store.put("incoming/mnist.npz", npz_bytes(**arrays))
    (item,) = ingest(store, "run-1").inputs
    assert (item.outcome, item.split, item.rows_accepted) == ("accepted", "train+holdout", N_TRAIN + N_HOLDOUT)

    spec = dataset_spec(load_manifest(store))
    assert (spec.n_train_rows, spec.n_holdout_rows) == (N_TRAIN, N_HOLDOUT)
    dataset = load_dataset(store, spec)

    assert dataset.holdout_source == "supplied" and dataset.leaked_dropped == N_LEAKED
    assert np.array_equal(dataset.x_train, x[N_LEAKED:N_TRAIN]) and np.array_equal(dataset.y_train, y[N_LEAKED:N_TRAIN])
    assert np.array_equal(dataset.x_holdout, x[N_TRAIN:]) and np.array_equal(dataset.y_holdout, y[N_TRAIN:])
    assert dataset.x_train.dtype == dataset.y_train.dtype == np.uint8


def test_a_hash_split_never_puts_one_image_on_both_sides(tmp_path: object) -> None:
    x, y = digits(2000, seed=4)
    x[1000:1200] = x[:200]  # the same images again, later in the data
    store = open_store(str(tmp_path))
    store.put("incoming/a.npz", npz_bytes(x=x[:1000], y=y[:1000]))
    store.put("incoming/b.npz", npz_bytes(x=x[1000:], y=y[1000:]))
    ingest(store, "run-1")
    dataset = load_dataset(store, dataset_spec(load_manifest(store)))
    assert dataset.holdout_source == "hash-split" and dataset.leaked_dropped == 0
    assert not set(map(bytes, dataset.x_train)) & set(map(bytes, dataset.x_holdout))
    assert len(dataset.x_train) + len(dataset.x_holdout) == 2000
