"""The manifest: two runs ingesting into one store at once never lose an entry (both backends), and manifests
written by older or newer versions still load."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from builders import digits, entries_by_key

from tasks.ingest import IngestSummary, ingest
from tasks.manifest import MANIFEST_KEY, load_manifest
from tasks.sample import digits_to_csv
from tasks.store import ObjectInfo, Store, open_store


class RunView:
    """One run's view of a shared store: it sees only its own folder of `incoming/`, as when files land between
    two runs' listings, and it can be held at its first manifest write until the other run gets there too."""

    def __init__(self, store: Store, folder: str, barrier: threading.Barrier | None) -> None:
        self._store, self._folder, self._barrier = store, folder, barrier
        self.uri = store.uri
        self.manifest_writes = 0

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        found = self._store.list(prefix)
        return [i for i in found if i.key.startswith(self._folder) or not i.key.startswith("incoming/")]

    def put_if(self, key: str, data: bytes, if_match: str | None, content_type: str | None = None) -> str:
        self.manifest_writes += 1
        if self.manifest_writes == 1 and self._barrier is not None:
            self._barrier.wait(timeout=60)  # both runs have read the same manifest: one write must lose
        return self._store.put_if(key, data, if_match, content_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def land(store: Store, folder: str, n_files: int, seed: int) -> set[str]:
    keys = set()
    for i in range(n_files):
        x, y = digits(5, seed=seed * 100 + i)
        key = f"{folder}file-{i}.csv"
        store.put(key, digits_to_csv(x, y))
        keys.add(key)
    return keys


def ingest_at_once(store_uri: str, n_runs: int, files_per_run: int, *, collide: bool) -> tuple[set[str], list[Any]]:
    store = open_store(store_uri)
    folders = [f"incoming/run-{r}/" for r in range(n_runs)]
    landed = set().union(*(land(store, folder, files_per_run, seed) for seed, folder in enumerate(folders)))
    barrier = threading.Barrier(n_runs) if collide else None
    views = []
    for folder in folders:
        own = open_store(store_uri)
        getattr(own, "client", None)  # boto3 sessions are built here, not concurrently in the threads
        views.append(RunView(own, folder, barrier))
    with ThreadPoolExecutor(n_runs) as pool:
        runs: list[IngestSummary] = list(pool.map(lambda v: ingest(v[1], f"run-{v[0]}"), enumerate(views)))
    assert all(len(run.inputs) == files_per_run for run in runs)
    return landed, views


def test_two_runs_writing_the_manifest_on_the_same_version_both_keep_their_entries(store_uri: str) -> None:
    landed, views = ingest_at_once(store_uri, 2, 2, collide=True)
    store = open_store(store_uri)
    assert set(entries_by_key(store)) == landed
    assert sorted(v.manifest_writes for v in views) == [1, 2]  # the loser re-read, merged and wrote again
    assert len(load_manifest(store).batches()) == 4


def test_many_runs_at_once_lose_nothing(store_uri: str) -> None:
    landed, _ = ingest_at_once(store_uri, 4, 3, collide=False)
    entries = entries_by_key(open_store(store_uri))
    assert set(entries) == landed and {e["outcome"] for e in entries.values()} == {"accepted"}


def test_manifests_of_older_and_newer_versions_load(tmp_path: object) -> None:
    store = open_store(str(tmp_path))
    old_entry = {
        "key": "incoming/a.csv",
        "sha256": "ab" * 32,
        "outcome": "accepted",
        "rows_accepted": 3,
        "rows_rejected": 0,
        "split": "train",
        "ingested_at": "2026-01-01T00:00:00.000Z",
        "run_id": "old",
        "size": 10,
        "fingerprint": "10-1",
        "batches": [{"key": "datasets/batches/x-all.npz", "split": "train", "rows": 3}],
        "reason": None,
        "part_of": None,
    }
    newer_entry = {**old_entry, "key": "incoming/b.csv", "from_the_future": 1}
    newer_entry["batches"] = [{**old_entry["batches"][0], "key": "datasets/batches/y-all.npz", "hue": "blue"}]
    store.put(MANIFEST_KEY, json.dumps({"format": 1, "entries": [old_entry, newer_entry]}).encode())

    manifest = load_manifest(store)

    assert [e.key for e in manifest.entries] == ["incoming/a.csv", "incoming/b.csv"]
    assert manifest.entries[0].checks is None and manifest.entries[0].rejected_rows_key is None
    assert [b.summary for b in manifest.batches()] == [None, None]
    assert manifest.train_summaries() == []  # batches stored before summaries existed: no reference from them


def test_a_run_view_sees_only_its_folder(tmp_path: object) -> None:
    store = open_store(str(tmp_path))
    land(store, "incoming/run-0/", 1, 0)
    land(store, "incoming/run-1/", 1, 1)
    view = RunView(store, "incoming/run-0/", None)
    assert [i.key for i in view.list("incoming/")] == ["incoming/run-0/file-0.csv"]
