"""Bad rows inside a good CSV, through ingest on both backends: kept apart with a reason each while few,
the whole file quarantined when too many; every row ends up in the dataset or in quarantine."""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pytest
from builders import digits, entries_by_key

from tasks.dataset import dataset_spec, load_dataset
from tasks.ingest import ingest
from tasks.manifest import load_manifest
from tasks.pipeline import ingest_inputs
from tasks.sample import digits_to_csv
from tasks.store import Store, open_store

N = 200
X, Y = digits(N, seed=3)
BAD_LINES = {
    # row number (1-based, after the header) → the line as the producer wrote it
    17: '9,"not, a pixel",' + ",".join(["0"] * 783),  # a quote and a comma: the rejected-rows CSV must quote it
    150: "4," + ",".join(["0"] * 700),
    200: "12," + ",".join(["0"] * 784),
}


def csv_with_bad_rows(rows: dict[int, str], *, header: bool = True, newline: str = "\n", bom: bool = False) -> bytes:
    lines = digits_to_csv(X, Y, header=header).decode().splitlines()
    offset = 1 if header else 0
    for number, text in rows.items():
        lines[number - 1 + offset] = text
    return (b"\xef\xbb\xbf" if bom else b"") + (newline.join(lines) + newline).encode()


def good_rows_except(rows: dict[int, str]) -> np.ndarray:
    keep = np.ones(N, bool)
    keep[[number - 1 for number in rows]] = False
    return keep


def rejected_rows(store: Store, key: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(store.get(key).decode())))


def accounted(store: Store) -> dict[str, int]:
    """Each input's rows_accepted + rows_rejected (IDX labels files, counted with their images, left out)."""
    return {k: e["rows_accepted"] + e["rows_rejected"] for k, e in entries_by_key(store).items() if not e["part_of"]}


def test_few_bad_rows_are_set_aside_and_the_good_ones_kept(store_uri: str) -> None:
    store = open_store(store_uri)
    bad = {17: BAD_LINES[17], 150: BAD_LINES[150]}  # 2 of 200: exactly the 1% allowed
    store.put("incoming/batch/mostly good.csv", csv_with_bad_rows(bad))

    summary = ingest(store, "run-1")

    entry = entries_by_key(store)["incoming/batch/mostly good.csv"]
    rejected_key = "quarantine/batch/mostly good.csv.rejected-rows.csv"
    assert (entry["outcome"], entry["rows_accepted"], entry["rows_rejected"]) == ("accepted", 198, 2)
    assert entry["rejected_rows_key"] == rejected_key
    assert entry["reason"].startswith(f"2 bad rows of 200 set aside in {rejected_key}; first: row 17: ")
    assert rejected_rows(store, rejected_key) == [
        ["row", "reason", "raw_line"],
        ["17", "786 values, expected 785 (label + 784 pixels)", BAD_LINES[17]],
        ["150", "701 values, expected 785 (label + 784 pixels)", BAD_LINES[150]],
    ]
    (item,) = summary.inputs
    assert (item.rows_rejected, item.rejected_rows_key) == (2, rejected_key)
    assert not store.exists("quarantine/batch/mostly good.csv")  # the file itself was accepted
    dataset = load_dataset(store, dataset_spec(load_manifest(store)))
    kept = good_rows_except(bad)
    everything = np.concatenate([dataset.x_train, dataset.x_holdout])
    assert sorted(map(bytes, everything)) == sorted(map(bytes, X[kept]))
    assert accounted(store) == {"incoming/batch/mostly good.csv": N}


def test_too_many_bad_rows_quarantine_the_whole_file(store_uri: str) -> None:
    store = open_store(store_uri)
    data = csv_with_bad_rows(BAD_LINES)  # 3 of 200: 1.5%, over the 1% allowed
    store.put("incoming/bad.csv", data)

    summary = ingest(store, "run-1")

    entry = entries_by_key(store)["incoming/bad.csv"]
    assert (entry["outcome"], entry["rows_accepted"], entry["rows_rejected"]) == ("quarantined", 0, N)
    assert entry["rejected_rows_key"] is None and entry["batches"] == []
    assert entry["reason"].startswith("3 bad rows of 200, more than the 1% allowed (max_bad_row_fraction)")
    assert store.get("quarantine/bad.csv") == data
    assert not store.exists("quarantine/bad.csv.rejected-rows.csv")
    assert summary.total_batches == 0 and accounted(store) == {"incoming/bad.csv": N}


@pytest.mark.parametrize(("fraction", "outcome"), [(0.0, "quarantined"), (0.014, "quarantined"), (0.015, "accepted")])
def test_the_bad_row_fraction_is_configurable(tmp_path: object, fraction: float, outcome: str) -> None:
    store = open_store(str(tmp_path))
    store.put("incoming/a.csv", csv_with_bad_rows(BAD_LINES))  # 3 bad rows of 200 = 1.5%
    ingest(store, "run-1", max_bad_row_fraction=fraction)
    entry = entries_by_key(store)["incoming/a.csv"]
    assert entry["outcome"] == outcome
    assert entry["rows_accepted"] + entry["rows_rejected"] == N


def test_no_good_row_at_all_quarantines_even_when_every_row_may_be_bad(tmp_path: object) -> None:
    store = open_store(str(tmp_path))
    store.put("incoming/a.csv", b"12,1,2\n13,4,5\n")
    ingest(store, "run-1", max_bad_row_fraction=1.0)
    entry = entries_by_key(store)["incoming/a.csv"]
    assert (entry["outcome"], entry["rows_rejected"]) == ("quarantined", 2)


def test_every_row_is_accounted_for_whatever_the_layout(store_uri: str) -> None:
    store = open_store(store_uri)
    bad = {17: BAD_LINES[17]}
    files = {
        "incoming/crlf bom.csv": csv_with_bad_rows(bad, newline="\r\n", bom=True),
        "incoming/no header.CSV": csv_with_bad_rows(bad, header=False),
        "incoming/zipped.csv.gz": gzip.compress(csv_with_bad_rows(bad)),
        "incoming/clean.csv": digits_to_csv(X, Y),
        "incoming/broken.csv": csv_with_bad_rows(BAD_LINES),
    }
    for key, data in files.items():
        store.put(key, data)

    ingest(store, "run-1")

    assert accounted(store) == dict.fromkeys(files, N)
    entries = entries_by_key(store)
    for key in ("incoming/crlf bom.csv", "incoming/no header.CSV", "incoming/zipped.csv.gz"):
        rejected_key = "quarantine/" + key.removeprefix("incoming/") + ".rejected-rows.csv"
        assert entries[key]["rejected_rows_key"] == rejected_key
        assert rejected_rows(store, rejected_key)[1] == ["17", "786 values, expected 785 (label + 784 pixels)", bad[17]]
    assert entries["incoming/clean.csv"]["rejected_rows_key"] is None
    assert entries["incoming/broken.csv"]["outcome"] == "quarantined"


def test_the_run_log_names_rejected_rows_and_warnings(tmp_path: object) -> None:
    store_uri = str(tmp_path)
    store = open_store(store_uri)
    store.put("incoming/a.csv", csv_with_bad_rows({17: BAD_LINES[17]}))
    images = X[:10].copy()
    images[:3] = 255 - images[:3]  # three inverted digits: a data check warning
    store.put("incoming/b.csv", digits_to_csv(images, Y[:10]))
    lines: list[str] = []

    ingest_inputs(store_uri, "run-1", 1024, 0.01, "warn", lines.append)

    assert any(line.startswith("incoming/a.csv: accepted, 199 rows (train), 1 rejected: 1 bad row") for line in lines)
    assert any(line.startswith("incoming/b.csv: data check warning: 3 inverted image(s)") for line in lines)
    assert lines[-1] == "2 new input(s), 0 already seen, 1 row(s) rejected, 1 data check warning(s)"
