"""Every kind of broken input, through ingest on both backends: quarantined byte for byte with an actionable
reason, recorded in the manifest, and the run goes on with the good files.

All cases land in one store and are ingested by one run per backend (the run must survive all of them at
once); each case is then checked on its own.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import digits, entries_by_key, idx_pair, npz_bytes

from tasks.dataset import dataset_spec, load_dataset
from tasks.ingest import IngestSummary, ingest
from tasks.manifest import load_manifest
from tasks.sample import CSV_HEADER, digits_to_csv
from tasks.store import Store, open_store

RUN_ID = "run-broken"
MAX_INPUT_BYTES = 64 * 1024
X, Y = digits(100, seed=7)
UNPICKLED: list[str] = []  # filled if ingest ever unpickles the NPZ below


def _record_unpickling() -> str:
    UNPICKLED.append("unpickled")
    return "boom"


class Booby:
    """Unpickling it calls `_record_unpickling`: proof that an NPZ object array was (or was not) loaded."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _record_unpickling, ()


def csv_with_bad_row(bad: str, n: int = 5) -> bytes:
    """A headerless n-row CSV whose second row is `bad`: 1 of n rows bad, more than the 1% default."""
    lines = digits_to_csv(X[:n], Y[:n], header=False).decode().splitlines()
    lines[1] = bad
    return ("\n".join(lines) + "\n").encode()


def row(label: str = "3", pixel: str = "0", at: int = 5) -> str:
    pixels = ["0"] * 784
    pixels[at] = pixel
    return ",".join([label, *pixels])


IMAGES, LABELS = idx_pair(X[:5], Y[:5])


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, bytes]  # key under incoming/ → bytes; the first is the input, the rest its companions
    reason: str  # found in the reason, case-insensitively
    rows_rejected: int = 0  # known row counts go to rows_rejected: every row is accounted for


CASES = [
    Case("empty file", {"empty.csv": b""}, "empty file"),
    Case("header only", {"header-only.csv": (CSV_HEADER + "\n").encode()}, "header only"),
    Case("wrong column count", {"columns.csv": b"1,2,3,4,5,6,7,8,9,0\n" * 3}, "10 values, expected 785", 3),
    Case("header column count", {"header.csv": b"label,a,b\n1,2,3\n"}, "header has 3 columns"),
    Case("non-numeric pixel", {"text.csv": csv_with_bad_row(row(pixel="abc"))}, "'abc', not an integer", 5),
    Case("float pixel", {"float.csv": csv_with_bad_row(row(pixel="12.5"))}, "'12.5', not an integer", 5),
    Case("pixel over 255", {"pixel.csv": csv_with_bad_row(row(pixel="300"))}, "pixel 5 is 300, outside 0–255", 5),
    Case("negative pixel", {"negative.csv": csv_with_bad_row(row(pixel="-1"))}, "is -1, outside 0–255", 5),
    Case("label over 9", {"label.csv": csv_with_bad_row(row(label="12"))}, "label is 12, outside 0–9", 5),
    Case("missing value", {"missing.csv": csv_with_bad_row(row(pixel=""))}, "pixel 5 is missing", 5),
    Case("truncated gzip", {"cut.csv.gz": gzip.compress(digits_to_csv(X[:5], Y[:5]))[:-40]}, "truncated gzip"),
    Case("gz that is not gzip", {"plain.csv.gz": digits_to_csv(X[:5], Y[:5])}, "named .gz but is not gzip"),
    Case("binary named .csv", {"binary.csv": bytes(range(256)) * 8}, "not a csv text file"),
    Case("png named .csv", {"image.csv": b"\x89PNG\r\n\x1a\n" + bytes(64)}, "it looks like a png image"),
    Case(
        "idx wrong magic",
        {"magic/t-images-idx3-ubyte": b"\x00\x00\x04\xd2" + IMAGES[4:], "magic/t-labels-idx1-ubyte": LABELS},
        "not an idx images file",
    ),
    Case(
        "idx truncated",
        {"cut/t-images-idx3-ubyte": IMAGES[:-100], "cut/t-labels-idx1-ubyte": LABELS},
        "truncated idx images file",
    ),
    Case("idx without labels", {"lonely/t-images-idx3-ubyte": IMAGES}, "no labels file"),
    Case("idx labels alone", {"orphan/t-labels-idx1-ubyte": LABELS}, "is an idx labels file"),
    Case(
        "idx count mismatch",
        {"count/t-images-idx3-ubyte": IMAGES, "count/t-labels-idx1-ubyte": idx_pair(X[:4], Y[:4])[1]},
        "holds 5 images but its labels file 4",
    ),
    Case(
        "npz object array",
        {"pickle.npz": npz_bytes(x=np.array([Booby()] * 5, dtype=object), y=Y[:5])},
        "holds python objects",
    ),
    Case("npz wrong shape", {"shape.npz": npz_bytes(x=np.zeros((5, 27, 27), np.uint8), y=Y[:5])}, "has shape"),
    Case("npz float dtype", {"dtype.npz": npz_bytes(x=X[:5].astype(np.float32), y=Y[:5])}, "dtype float32"),
    Case("npz wrong keys", {"keys.npz": npz_bytes(images=X[:5], labels=Y[:5])}, "npz keys are images, labels"),
    Case("npz that is no zip", {"fake.npz": b"just text\n"}, "not an npz file"),
    Case("over the size limit", {"huge.csv": digits_to_csv(X[:60], Y[:60])}, "over the 0.0625 mb input limit"),
    Case("unsupported extension", {"notes.txt": b"7,0,0,0\n"}, "unsupported file type"),
]
GOOD = {
    "good/a.csv": digits_to_csv(X[60:70], Y[60:70]),
    "good/b.npz": npz_bytes(x=X[70:80], y=Y[70:80]),
    "holdout/h.csv": digits_to_csv(X[80:90], Y[80:90]),
}


@dataclass(frozen=True)
class Ingested:
    store: Store
    summary: IngestSummary
    entries: dict[str, dict[str, Any]]


@pytest.fixture(scope="module", params=["local", "s3"])
def ingested(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """One store holding every case and the good files, ingested once (module-wide, per backend)."""
    with pytest.MonkeyPatch.context() as env:
        if request.param == "s3":
            endpoint = request.getfixturevalue("s3_endpoint")
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
                env.delenv(name, raising=False)
            for name, value in endpoint.env().items():
                env.setenv(name, value)
            uri = f"s3://{endpoint.new_bucket()}/pipeline"
        else:
            uri = str(Path(tmp_path_factory.mktemp("broken")) / "store")
        store = open_store(uri)
        for case in CASES:
            for key, data in case.files.items():
                store.put("incoming/" + key, data)
        for key, data in GOOD.items():
            store.put("incoming/" + key, data)
        summary = ingest(store, RUN_ID, MAX_INPUT_BYTES)
        yield Ingested(store, summary, entries_by_key(store))


def test_the_size_limit_case_is_over_the_limit() -> None:
    (case,) = (c for c in CASES if c.name == "over the size limit")
    assert len(case.files["huge.csv"]) > MAX_INPUT_BYTES
    assert all(len(d) <= MAX_INPUT_BYTES for c in CASES if c is not case for d in c.files.values())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_input_is_quarantined_with_an_actionable_reason(case: Case, ingested: Ingested) -> None:
    store = ingested.store
    for key, data in case.files.items():
        source = "incoming/" + key
        assert store.get("quarantine/" + key) == data, "quarantined byte for byte"
        assert store.get(source) == data, "incoming/ is never rewritten"
        record = json.loads(store.get(f"quarantine/{key}.reason.json"))
        assert set(record) == {"source", "reason", "errors", "run_id", "at"}
        assert record["source"] == source and record["run_id"] == RUN_ID
        assert case.reason in record["reason"].lower()
        assert record["errors"] and all(isinstance(e, str) and e for e in record["errors"])
        assert datetime.fromisoformat(record["at"]).tzinfo is not None
        entry = ingested.entries[source]
        assert entry["outcome"] == "quarantined" and entry["reason"] == record["reason"]
        assert entry["rows_accepted"] == 0 and entry["batches"] == [] and entry["run_id"] == RUN_ID
    primary = ingested.entries["incoming/" + next(iter(case.files))]
    assert primary["rows_rejected"] == case.rows_rejected
    outcomes = {item.key: item for item in ingested.summary.inputs}
    assert outcomes["incoming/" + next(iter(case.files))].outcome == "quarantined"


def test_an_oversized_input_is_refused_unread(ingested: Ingested) -> None:
    assert ingested.entries["incoming/huge.csv"]["sha256"] is None
    assert "split it" in ingested.entries["incoming/huge.csv"]["reason"]


def test_an_npz_holding_objects_is_never_unpickled(ingested: Ingested) -> None:
    assert UNPICKLED == []


def test_the_run_goes_on_with_the_good_files(ingested: Ingested) -> None:
    for key in GOOD:
        entry = ingested.entries["incoming/" + key]
        assert (entry["outcome"], entry["rows_accepted"], entry["rows_rejected"]) == ("accepted", 10, 0)
    quarantined = sum(len(c.files) for c in CASES)
    assert len(ingested.summary.inputs) == quarantined + len(GOOD)
    dataset = load_dataset(ingested.store, dataset_spec(load_manifest(ingested.store)))
    assert sorted(map(bytes, dataset.x_train)) == sorted(map(bytes, X[60:80]))
    assert sorted(map(bytes, dataset.x_holdout)) == sorted(map(bytes, X[80:90]))


def test_only_the_quarantine_copies_and_reasons_are_written_there(ingested: Ingested) -> None:
    written = {info.key for info in ingested.store.list("quarantine/")}
    expected = {f"quarantine/{key}{suffix}" for c in CASES for key in c.files for suffix in ("", ".reason.json")}
    assert written == expected
