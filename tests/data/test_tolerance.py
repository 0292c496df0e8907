"""What users expect to just work, through ingest on both backends: header or not, CRLF, a UTF-8 BOM, upper-case
extensions, nested folders and odd file names."""

from __future__ import annotations

import gzip
import json

import numpy as np
from builders import digits, entries_by_key, idx_pair, npz_bytes

from tasks.dataset import dataset_spec, load_dataset
from tasks.ingest import ingest
from tasks.manifest import load_manifest
from tasks.sample import digits_to_csv
from tasks.store import open_store

X, Y = digits(150, seed=11)
ODD_NAMES = [
    "with spaces  and  tabs\t.csv",
    "données été 数字 ✓.csv",
    "<script>alert(1)</script>.csv",
    'it\'s "quoted".csv',
    "a&b=c?d;e.csv",
    "100% done #1 (copy) [2].csv",
]


def part(i: int) -> tuple[np.ndarray, np.ndarray]:
    """The i-th slice of ten digits: every file below holds its own."""
    return X[10 * i : 10 * i + 10], Y[10 * i : 10 * i + 10]


def slice_csv(i: int, **options: bool) -> bytes:
    return digits_to_csv(*part(i), **options)


def crlf_bom(data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")


def test_usual_variants_and_odd_names_are_all_ingested(store_uri: str) -> None:
    store = open_store(store_uri)
    images, labels = idx_pair(*part(7))
    files = {
        "incoming/plain.csv": slice_csv(0, header=False),
        "incoming/header.csv": slice_csv(1),
        "incoming/windows/crlf-bom.csv": crlf_bom(slice_csv(2)),
        "incoming/windows/crlf-bom-no-header.csv": crlf_bom(slice_csv(3, header=False)),
        "incoming/UPPER/DIGITS.CSV": slice_csv(4),
        "incoming/UPPER/DIGITS.CSV.GZ": gzip.compress(slice_csv(5)),
        "incoming/UPPER/PAIR.NPZ": npz_bytes(x=part(8)[0], y=part(8)[1]),
        "incoming/UPPER/TRAIN-IMAGES-IDX3-UBYTE.GZ": gzip.compress(images),
        "incoming/UPPER/TRAIN-LABELS-IDX1-UBYTE.GZ": gzip.compress(labels),
        "incoming/a/b/c/d/e/deeply nested.csv": crlf_bom(slice_csv(6, header=False)),
    }
    odd = {f"incoming/odd/{name}": slice_csv(9 + i) for i, name in enumerate(ODD_NAMES)}
    for key, data in {**files, **odd}.items():
        store.put(key, data)

    summary = ingest(store, "run-1")

    entries = entries_by_key(store)
    assert set(entries) == set(files) | set(odd)
    for key, entry in entries.items():
        assert (entry["outcome"], entry["rows_accepted"], entry["rows_rejected"]) == ("accepted", 10, 0), key
    assert {item.key for item in summary.inputs} == set(files) | set(odd)
    dataset = load_dataset(store, dataset_spec(load_manifest(store)))
    everything = np.concatenate([dataset.x_train, dataset.x_holdout])
    assert sorted(map(bytes, everything)) == sorted(map(bytes, X))
    again = ingest(store, "run-2")
    assert again.inputs == () and again.already_seen == len(files) + len(odd)


def test_an_odd_name_is_quarantined_under_the_same_odd_name(store_uri: str) -> None:
    store = open_store(store_uri)
    for name in ODD_NAMES:
        store.put(f"incoming/odd/{name}", b"label\n")
    ingest(store, "run-1")
    for name in ODD_NAMES:
        assert store.get(f"quarantine/odd/{name}") == b"label\n"
        record = json.loads(store.get(f"quarantine/odd/{name}.reason.json"))
        assert record["source"] == f"incoming/odd/{name}" and record["reason"]
