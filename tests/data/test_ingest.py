"""Ingest against both store backends: every format, quarantine with reasons, once-only manifest, holdout."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from builders import digits, entries_by_key, idx_pair, npz_bytes

from tasks.dataset import NoTrainingData, dataset_spec, hash_split, load_dataset
from tasks.ingest import ingest
from tasks.manifest import load_manifest
from tasks.sample import digits_to_csv
from tasks.store import open_store


def test_every_format_is_ingested_and_recorded(store_uri: str) -> None:
    store = open_store(store_uri)
    x, y = digits(60)
    store.put("incoming/a/plain.csv", digits_to_csv(x[:10], y[:10], header=False))
    store.put("incoming/b/with header.csv.gz", gzip.compress(digits_to_csv(x[10:20], y[10:20])))
    images, labels = idx_pair(x[20:30], y[20:30])
    store.put("incoming/idx/train-images-idx3-ubyte.gz", gzip.compress(images))
    store.put("incoming/idx/train-labels-idx1-ubyte.gz", gzip.compress(labels))
    store.put(
        "incoming/keras/mnist.npz",
        npz_bytes(x_train=x[30:40], y_train=y[30:40], x_test=x[40:45], y_test=y[40:45]),
    )
    store.put("incoming/holdout/pair.npz", npz_bytes(x=x[45:60], y=y[45:60]))

    summary = ingest(store, run_id="run-1")

    entries = entries_by_key(store)
    assert {e["outcome"] for e in entries.values()} == {"accepted"}
    assert entries["incoming/a/plain.csv"]["rows_accepted"] == 10
    assert entries["incoming/idx/train-images-idx3-ubyte.gz"]["rows_accepted"] == 10
    assert entries["incoming/idx/train-labels-idx1-ubyte.gz"]["part_of"] == "incoming/idx/train-images-idx3-ubyte.gz"
    assert entries["incoming/keras/mnist.npz"]["split"] == "train+holdout"
    assert entries["incoming/holdout/pair.npz"]["split"] == "holdout"
    for entry in entries.values():
        assert len(entry["sha256"]) == 64 and entry["ingested_at"] and entry["run_id"] == "run-1"
    assert len(summary.inputs) == 6

    dataset = load_dataset(store, dataset_spec(load_manifest(store)))
    assert dataset.holdout_source == "supplied"
    assert len(dataset.x_train) + dataset.leaked_dropped == 40
    assert len(dataset.x_holdout) == 20
    assert dataset.x_train.dtype == np.uint8 and dataset.x_train.shape[1:] == (28, 28)
    # the stored training data is exactly the input, in ingestion order of the batches
    assert sorted(map(bytes, dataset.x_holdout)) == sorted(map(bytes, np.concatenate([x[40:45], x[45:60]])))


def test_second_run_skips_seen_inputs_and_new_content_is_processed(store_uri: str) -> None:
    store = open_store(store_uri)
    x, y = digits(20)
    store.put("incoming/a.csv", digits_to_csv(x[:10], y[:10]))
    ingest(store, "run-1")
    again = ingest(store, "run-2")
    assert again.inputs == () and again.already_seen == 1
    store.put("incoming/a.csv", digits_to_csv(x[10:], y[10:]))  # new content under an old key
    third = ingest(store, "run-3")
    assert [(i.key, i.outcome, i.rows_accepted) for i in third.inputs] == [("incoming/a.csv", "accepted", 10)]
    assert len(load_manifest(store).entries) == 2


def test_same_content_under_new_key_is_a_duplicate(store_uri: str) -> None:
    store = open_store(store_uri)
    x, y = digits(10)
    data = digits_to_csv(x, y)
    store.put("incoming/a.csv", data)
    ingest(store, "run-1")
    store.put("incoming/copy of a.csv", data)
    summary = ingest(store, "run-2")
    assert [(i.outcome, i.rows_accepted) for i in summary.inputs] == [("duplicate", 0)]
    assert "same content as incoming/a.csv" in (summary.inputs[0].reason or "")
    assert summary.total_batches == 1


def test_bad_file_is_quarantined_byte_for_byte_and_the_rest_goes_on(store_uri: str) -> None:
    store = open_store(store_uri)
    x, y = digits(10)
    good = digits_to_csv(x, y, header=False)
    bad = good.replace(b"\n", b"\n300,", 1)  # second row: label 300 and one column too many
    store.put("incoming/good.csv", good)
    store.put("incoming/sub/bad.csv", bad)
    store.put("incoming/notes.txt", b"not digits")

    ingest(store, "run-q")

    assert store.get("quarantine/sub/bad.csv") == bad
    reason = json.loads(store.get("quarantine/sub/bad.csv.reason.json"))
    assert reason["source"] == "incoming/sub/bad.csv" and reason["run_id"] == "run-q" and reason["at"]
    assert "row 2" in reason["reason"] and reason["errors"]
    unsupported = json.loads(store.get("quarantine/notes.txt.reason.json"))
    assert "notes.txt" in unsupported["source"] and unsupported["reason"]
    entries = entries_by_key(store)
    assert entries["incoming/good.csv"]["outcome"] == "accepted"
    assert entries["incoming/sub/bad.csv"]["outcome"] == "quarantined"
    assert store.get("incoming/sub/bad.csv") == bad  # incoming/ is never rewritten


def test_idx_images_without_labels_and_orphan_labels_are_quarantined(store_uri: str) -> None:
    store = open_store(store_uri)
    images, labels = idx_pair(*digits(5))
    store.put("incoming/one/x-images-idx3-ubyte", images)
    store.put("incoming/two/x-labels-idx1-ubyte", labels)
    ingest(store, "run-1")
    entries = entries_by_key(store)
    assert entries["incoming/one/x-images-idx3-ubyte"]["outcome"] == "quarantined"
    assert "labels" in entries["incoming/one/x-images-idx3-ubyte"]["reason"]
    assert entries["incoming/two/x-labels-idx1-ubyte"]["outcome"] == "quarantined"


def test_file_over_the_size_limit_is_refused_unread(store_uri: str) -> None:
    store = open_store(store_uri)
    x, y = digits(40)
    store.put("incoming/big.csv", digits_to_csv(x, y))
    summary = ingest(store, "run-1", max_input_bytes=1000)
    assert summary.inputs[0].outcome == "quarantined"
    assert "over the" in (summary.inputs[0].reason or "") and "limit" in (summary.inputs[0].reason or "")
    assert entries_by_key(store)["incoming/big.csv"]["sha256"] is None


def test_without_holdout_files_a_stable_hash_split_is_used(tmp_path: object, mnist: dict) -> None:
    x, y = mnist["x_train"][:3000], mnist["y_train"][:3000]
    mask = hash_split(x)
    assert 0.07 < mask.mean() < 0.13
    assert np.array_equal(mask[1000:2000], hash_split(x[1000:2000]))  # per image, not per batch
    store = open_store(str(tmp_path))
    store.put("incoming/a.csv", digits_to_csv(x, y))
    ingest(store, "run-1")
    dataset = load_dataset(store, dataset_spec(load_manifest(store)))
    assert dataset.holdout_source == "hash-split"
    assert len(dataset.x_holdout) == mask.sum()


def test_training_images_identical_to_holdout_are_dropped(tmp_path: object) -> None:
    store = open_store(str(tmp_path))
    x, y = digits(20)
    store.put("incoming/train.csv", digits_to_csv(x, y))
    store.put("incoming/holdout/h.csv", digits_to_csv(x[:3], y[:3]))
    ingest(store, "run-1")
    dataset = load_dataset(store, dataset_spec(load_manifest(store)))
    assert dataset.leaked_dropped == 3 and len(dataset.x_train) == 17


def test_nothing_valid_to_train_on_is_a_clear_error(tmp_path: object) -> None:
    store = open_store(str(tmp_path))
    store.put("incoming/empty.csv", b"")
    ingest(store, "run-1")
    with pytest.raises(NoTrainingData, match="nothing valid to train on"):
        load_dataset(store, dataset_spec(load_manifest(store)))
