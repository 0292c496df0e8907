"""Publish a version: its files under `models/<version>/`, verified, then the champion pointer, history and index.

`models/champion.json` moves only by a conditional write, after every file of the version has been stored and
read back, so no reader ever sees a champion whose files are missing or partial.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.store import ObjectNotFound, PreconditionFailed, Store, StoreError, read_json_with_etag

MODELS = "models/"
CHAMPION_KEY = "models/champion.json"
HISTORY_KEY = "models/history.jsonl"
RUNS_KEY = "reports/runs.json"
INDEX_KEY = "reports/index.html"
LATEST_KEY = "reports/latest.html"
REQUIRED_FILES = (
    "model.keras",
    "saved_model/saved_model.pb",
    "model.tflite",
    "metrics.json",
    "verdict.json",
    "report.html",
)
MAX_CONFLICT_RETRIES = 20
CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".jsonl": "application/x-ndjson",
}


@dataclass(frozen=True)
class PublishResult:
    version: str
    promoted: bool
    report_key: str
    model_key: str
    reasons: tuple[str, ...]


def version_key(version: str, name: str) -> str:
    return f"{MODELS}{version}/{name}"


def content_type(key: str) -> str | None:
    return next((ctype for suffix, ctype in CONTENT_TYPES.items() if key.endswith(suffix)), None)


def to_json_bytes(document: Any) -> bytes:
    return json.dumps(document, indent=1, ensure_ascii=False, sort_keys=False).encode()


def read_champion(store: Store) -> tuple[dict[str, Any] | None, str | None]:
    """The champion pointer and its ETag (None, None when there is no champion yet)."""
    return read_json_with_etag(store, CHAMPION_KEY)


def put_verified(store: Store, files: dict[str, bytes]) -> None:
    """Store each file, then read every one back and compare its bytes' hash."""
    for key, data in files.items():
        store.put(key, data, content_type(key))
    for key, data in files.items():
        if hashlib.sha256(store.get(key)).digest() != hashlib.sha256(data).digest():
            raise StoreError(f"{key} read back different from what was written; not publishing")


def missing_files(store: Store, version: str) -> list[str]:
    return [name for name in REQUIRED_FILES if not store.exists(version_key(version, name))]


def update_document(store: Store, key: str, change: Callable[[bytes | None], bytes]) -> bytes:
    """Read-modify-write `key` under a conditional write, retrying when another writer got there first."""
    for _ in range(MAX_CONFLICT_RETRIES):
        try:
            current, etag = store.get_with_etag(key)
        except ObjectNotFound:
            current, etag = None, None
        updated = change(current)
        try:
            store.put_if(key, updated, etag, content_type(key))
        except PreconditionFailed:
            continue
        return updated
    raise PreconditionFailed(f"{key} kept changing under {MAX_CONFLICT_RETRIES} attempts to update it")


def append_history(store: Store, record: dict[str, Any]) -> None:
    line = json.dumps(record, ensure_ascii=False).encode() + b"\n"
    update_document(store, HISTORY_KEY, lambda current: (current or b"") + line)


def read_history(store: Store) -> list[dict[str, Any]]:
    try:
        data = store.get(HISTORY_KEY)
    except ObjectNotFound:
        return []
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def move_champion(
    store: Store, pointer: dict[str, Any], expected_etag: str | None, action: str, champion_before: str | None
) -> None:
    """Point the champion at `pointer["version"]` if it is still what was read as `expected_etag`.

    Raises:
        PreconditionFailed: the champion changed since it was read; the caller decides what follows.
    """
    missing = missing_files(store, pointer["version"])
    if missing:
        raise StoreError(f"version {pointer['version']} is incomplete (missing {', '.join(missing)}); not promoted")
    store.put_if(CHAMPION_KEY, to_json_bytes(pointer), expected_etag, "application/json")
    append_history(
        store,
        {
            "at": pointer["promoted_at"],
            "action": action,
            "from": champion_before,
            "to": pointer["version"],
            "reason": pointer["reason"],
            "run_id": pointer["run_id"],
        },
    )


def record_run(store: Store, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Add (or replace) this version's line in `reports/runs.json`; returns every run."""

    def change(current: bytes | None) -> bytes:
        runs = [r for r in (json.loads(current) if current else []) if r["version"] != run["version"]]
        return to_json_bytes([*runs, run])

    return list(json.loads(update_document(store, RUNS_KEY, change)))
