"""Ingest: landing zone → validated uint8 batches under `datasets/`, rejects → `quarantine/`, all in the manifest.

`incoming/` is read only: nothing there is ever deleted or rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from tasks.manifest import BatchRef, Manifest, ManifestEntry, append_entries, load_manifest
from tasks.parse import (
    DigitArrays,
    InputRejected,
    idx_images_candidates,
    idx_labels_candidates,
    input_kind,
    parse_input,
)
from tasks.store import ObjectInfo, Store

INCOMING = "incoming/"
HOLDOUT = "incoming/holdout/"
QUARANTINE = "quarantine/"
BATCHES = "datasets/batches/"


@dataclass(frozen=True)
class InputOutcome:
    """What became of one input in this run (a small record for logs and the report)."""

    key: str
    outcome: str
    split: str
    rows_accepted: int
    rows_rejected: int
    reason: str | None


@dataclass(frozen=True)
class IngestSummary:
    inputs: tuple[InputOutcome, ...]
    already_seen: int
    manifest_digest: str
    total_batches: int


@dataclass(frozen=True)
class _Unit:
    """One input as parsed together: a file, or an IDX images file with its labels file."""

    primary: ObjectInfo
    companion: ObjectInfo | None = None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def quarantine_key(key: str) -> str:
    return QUARANTINE + key.removeprefix(INCOMING)


def split_of(key: str, part: str) -> str:
    """Everything under incoming/holdout/ is holdout; elsewhere a Keras npz's test part is too."""
    return "holdout" if key.startswith(HOLDOUT) or part == "test" else "train"


def plan_units(listing: list[ObjectInfo], manifest: Manifest) -> tuple[list[_Unit], int]:
    """Group new inputs into units; returns (units, number of inputs already seen)."""
    by_key = {info.key: info for info in listing}
    is_new = {info.key: not manifest.seen_fingerprint(info.key, info.fingerprint) for info in listing}
    units: list[_Unit] = []
    claimed: set[str] = set()
    for info in listing:
        if input_kind(info.key) != "idx-images":
            continue
        labels = next((by_key[k] for k in idx_labels_candidates(info.key) if k in by_key), None)
        if is_new[info.key] or (labels is not None and is_new[labels.key]):
            units.append(_Unit(info, labels))
        claimed.update({info.key} | ({labels.key} if labels else set()))
    for info in listing:
        if info.key in claimed or not is_new[info.key]:
            continue
        has_images = any(k in by_key for k in idx_images_candidates(info.key))
        if input_kind(info.key) == "idx-labels" and has_images:
            continue  # handled with its images file
        units.append(_Unit(info))
    return units, sum(1 for new in is_new.values() if not new)


def encode_batch(arrays: DigitArrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, images=arrays.images, labels=arrays.labels)
    return buffer.getvalue()


def _quarantine(
    store: Store, unit: _Unit, error: InputRejected, run_id: str, at: str, digests: dict[str, str]
) -> list[ManifestEntry]:
    """Copy the unit byte for byte under quarantine/ with its reason; `digests` lacks files left unread."""
    entries = []
    for info in (unit.primary, unit.companion):
        if info is None:
            continue
        destination = quarantine_key(info.key)
        store.copy(info.key, destination)
        record = {
            "source": info.key,
            "reason": error.reason,
            "errors": error.errors,
            "run_id": run_id,
            "at": at,
        }
        store.put(destination + ".reason.json", json.dumps(record, indent=1, ensure_ascii=False).encode())
        entries.append(
            ManifestEntry(
                key=info.key,
                sha256=digests.get(info.key),
                outcome="quarantined",
                rows_accepted=0,
                rows_rejected=0,
                split=split_of(info.key, "all"),
                ingested_at=at,
                run_id=run_id,
                size=info.size,
                fingerprint=info.fingerprint,
                reason=error.reason,
                part_of=unit.primary.key if info is unit.companion else None,
            )
        )
    return entries


def _ingest_unit(store: Store, unit: _Unit, manifest: Manifest, run_id: str, max_bytes: int) -> list[ManifestEntry]:
    at = now_iso()
    for info in (unit.primary, unit.companion):
        if info is not None and info.size > max_bytes:
            limit_mb = max_bytes / 2**20
            reason = f"{info.key} is {info.size / 2**20:,.1f} MB, over the {limit_mb:,.0f} MB input limit; split it"
            return _quarantine(store, unit, InputRejected(reason, [reason]), run_id, at, {})
    data = store.get(unit.primary.key)
    sha = hashlib.sha256(data).hexdigest()
    labels_data = store.get(unit.companion.key) if unit.companion else None
    labels_sha = hashlib.sha256(labels_data).hexdigest() if labels_data is not None else None
    if manifest.seen_content(unit.primary.key, sha) and (
        unit.companion is None or manifest.seen_content(unit.companion.key, labels_sha)
    ):
        return []  # touched, not changed
    original = manifest.first_with_content(sha)
    if original is not None and original.key != unit.primary.key and unit.companion is None:
        return [
            ManifestEntry(
                key=unit.primary.key,
                sha256=sha,
                outcome="duplicate",
                rows_accepted=0,
                rows_rejected=0,
                split=original.split,
                ingested_at=at,
                run_id=run_id,
                size=unit.primary.size,
                fingerprint=unit.primary.fingerprint,
                reason=f"same content as {original.key}; not counted twice",
            )
        ]
    digests = {unit.primary.key: sha} | ({unit.companion.key: labels_sha} if unit.companion and labels_sha else {})
    try:
        parts = parse_input(unit.primary.key, data, labels_data)
    except InputRejected as error:
        return _quarantine(store, unit, error, run_id, at, digests)
    except Exception as error:  # a parser bug must not stop the run nor lose the input
        reason = f"could not be read ({type(error).__name__}: {error})"
        return _quarantine(store, unit, InputRejected(reason, [reason]), run_id, at, digests)
    batches = []
    for part, arrays in parts.items():
        batch_key = f"{BATCHES}{sha[:40]}-{part}.npz"
        store.put(batch_key, encode_batch(arrays))
        batches.append(BatchRef(batch_key, split_of(unit.primary.key, part), len(arrays.labels)))  # type: ignore[arg-type]
    rows = sum(b.rows for b in batches)
    splits = "+".join(sorted({b.split for b in batches}, reverse=True))
    entry = ManifestEntry(
        key=unit.primary.key,
        sha256=sha,
        outcome="accepted",
        rows_accepted=rows,
        rows_rejected=0,
        split=splits,
        ingested_at=at,
        run_id=run_id,
        size=unit.primary.size,
        fingerprint=unit.primary.fingerprint,
        batches=tuple(batches),
    )
    if unit.companion is None:
        return [entry]
    labels_entry = ManifestEntry(
        key=unit.companion.key,
        sha256=labels_sha,
        outcome="accepted",
        rows_accepted=rows,
        rows_rejected=0,
        split=splits,
        ingested_at=at,
        run_id=run_id,
        size=unit.companion.size,
        fingerprint=unit.companion.fingerprint,
        part_of=unit.primary.key,
    )
    return [entry, labels_entry]


def ingest(store: Store, run_id: str, max_input_bytes: int = 2**30) -> IngestSummary:
    """Process every new input under `incoming/` once; the run goes on whatever a single input holds."""
    manifest = load_manifest(store)
    units, already_seen = plan_units(store.list(INCOMING), manifest)
    new_entries: list[ManifestEntry] = []
    for unit in units:
        new_entries.extend(_ingest_unit(store, unit, manifest, run_id, max_input_bytes))
    updated = append_entries(store, new_entries) if new_entries else manifest
    outcomes = tuple(
        InputOutcome(e.key, e.outcome, e.split, e.rows_accepted, e.rows_rejected, e.reason) for e in new_entries
    )
    return IngestSummary(outcomes, already_seen, updated.digest(), len(updated.batches()))
