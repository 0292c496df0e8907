"""Ingest: landing zone → validated uint8 batches under `datasets/`, rejects → `quarantine/`, all in the manifest.

`incoming/` is read only: nothing there is ever deleted or rewritten.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, get_args

import numpy as np

from tasks.data_checks import BatchSummary, ChecksMode, check_batch, combine, summarize
from tasks.manifest import BatchRef, Manifest, ManifestEntry, append_entries, load_manifest
from tasks.parse import DigitArrays, InputRejected, idx_images_candidates, idx_labels_candidates, input_kind
from tasks.quarantine import INCOMING, quarantine_file, rejected_rows_csv, rejected_rows_key
from tasks.row_policy import Parsed, RowsRejected, parse_with_row_policy, partial_reason
from tasks.store import ObjectInfo, Store

HOLDOUT = INCOMING + "holdout/"
BATCHES = "datasets/batches/"


@dataclass(frozen=True)
class InputOutcome:
    """What became of one input in this run (a small, JSON-ready record for logs and the report)."""

    key: str
    outcome: str
    split: str
    rows_accepted: int
    rows_rejected: int
    reason: str | None
    rejected_rows_key: str | None = None
    checks: dict[str, Any] | None = None  # see `tasks.data_checks.check_batch`

    @staticmethod
    def of(entry: ManifestEntry) -> InputOutcome:
        return InputOutcome(**{f.name: getattr(entry, f.name) for f in fields(InputOutcome)})


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


@dataclass(frozen=True)
class _Run:
    """What every input of one ingest shares."""

    store: Store
    manifest: Manifest  # as read at the start: the reference is what was accepted before this run
    run_id: str
    reference: BatchSummary
    max_input_bytes: int
    max_bad_row_fraction: float
    data_checks: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    run: _Run,
    unit: _Unit,
    error: InputRejected,
    at: str,
    digests: dict[str, str],
    rows: int = 0,
    checks: dict[str, Any] | None = None,
) -> list[ManifestEntry]:
    """Copy the unit byte for byte under quarantine/ with its reason; `digests` lacks files left unread.

    `rows` is the input's row count when known: all of them are rejected with it.
    """
    entries = []
    for info in (unit.primary, unit.companion):
        if info is None:
            continue
        quarantine_file(run.store, info.key, error, run.run_id, at)
        entries.append(
            ManifestEntry(
                key=info.key,
                sha256=digests.get(info.key),
                outcome="quarantined",
                rows_accepted=0,
                rows_rejected=rows,
                split=split_of(info.key, "all"),
                ingested_at=at,
                run_id=run.run_id,
                size=info.size,
                fingerprint=info.fingerprint,
                reason=error.reason,
                part_of=unit.primary.key if info is unit.companion else None,
                checks=checks if info is unit.primary else None,
            )
        )
    return entries


def _checks_failed(checks: dict[str, Any]) -> InputRejected:
    warnings: list[str] = checks["warnings"]
    more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
    return InputRejected(f"failed the data checks (data_checks=fail): {warnings[0]}{more}", warnings)


def _accept(
    run: _Run,
    unit: _Unit,
    parsed: Parsed,
    summaries: dict[str, BatchSummary],
    checks: dict[str, Any],
    sha: str,
    at: str,
) -> ManifestEntry:
    """Store the parsed parts as batches (and any bad rows under quarantine/); returns the input's entry."""
    batches = []
    for part, arrays in parsed.parts.items():
        batch_key = f"{BATCHES}{sha[:40]}-{part}.npz"
        run.store.put(batch_key, encode_batch(arrays))
        split = split_of(unit.primary.key, part)
        batches.append(BatchRef(batch_key, split, len(arrays), summaries[part]))  # type: ignore[arg-type]
    rejected_key, reason = None, None
    if parsed.bad_rows:
        rejected_key = rejected_rows_key(unit.primary.key)
        run.store.put(rejected_key, rejected_rows_csv(parsed.bad_rows), "text/csv")
        rows = sum(b.rows for b in batches) + len(parsed.bad_rows)
        reason = partial_reason(rows, parsed.bad_rows, rejected_key)
    return ManifestEntry(
        key=unit.primary.key,
        sha256=sha,
        outcome="accepted",
        rows_accepted=sum(b.rows for b in batches),
        rows_rejected=len(parsed.bad_rows),
        split="+".join(sorted({b.split for b in batches}, reverse=True)),
        ingested_at=at,
        run_id=run.run_id,
        size=unit.primary.size,
        fingerprint=unit.primary.fingerprint,
        batches=tuple(batches),
        reason=reason,
        rejected_rows_key=rejected_key,
        checks=checks,
    )


def _ingest_unit(run: _Run, unit: _Unit) -> list[ManifestEntry]:
    at, store, manifest = now_iso(), run.store, run.manifest
    for info in (unit.primary, unit.companion):
        if info is not None and info.size > run.max_input_bytes:
            limit_mb = run.max_input_bytes / 2**20
            size_mb = info.size / 2**20
            reason = f"{info.key} is {size_mb:,.1f} MB, over the {limit_mb:,g} MB input limit (max_input_mb); split it"
            return _quarantine(run, unit, InputRejected(reason, [reason]), at, {})
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
                run_id=run.run_id,
                size=unit.primary.size,
                fingerprint=unit.primary.fingerprint,
                reason=f"same content as {original.key}; not counted twice",
            )
        ]
    digests = {unit.primary.key: sha} | ({unit.companion.key: labels_sha} if unit.companion and labels_sha else {})
    try:
        parsed = parse_with_row_policy(unit.primary.key, data, labels_data, run.max_bad_row_fraction)
    except RowsRejected as error:
        return _quarantine(run, unit, error, at, digests, rows=error.n_rows)
    except InputRejected as error:
        return _quarantine(run, unit, error, at, digests)
    except Exception as error:  # a parser bug must not stop the run nor lose the input
        reason = f"could not be read ({type(error).__name__}: {error})"
        return _quarantine(run, unit, InputRejected(reason, [reason]), at, digests)
    summaries = {part: summarize(arrays.images, arrays.labels) for part, arrays in parsed.parts.items()}
    summary = combine(summaries.values())
    checks = check_batch(summary, run.reference)
    if checks["warnings"] and run.data_checks == "fail":
        rows = summary["rows"] + len(parsed.bad_rows)
        return _quarantine(run, unit, _checks_failed(checks), at, digests, rows=rows, checks=checks)
    entry = _accept(run, unit, parsed, summaries, checks, sha, at)
    if unit.companion is None:
        return [entry]
    labels_entry = ManifestEntry(
        key=unit.companion.key,
        sha256=labels_sha,
        outcome="accepted",
        rows_accepted=entry.rows_accepted,
        rows_rejected=0,
        split=entry.split,
        ingested_at=at,
        run_id=run.run_id,
        size=unit.companion.size,
        fingerprint=unit.companion.fingerprint,
        part_of=unit.primary.key,
    )
    return [entry, labels_entry]


def ingest(
    store: Store,
    run_id: str,
    max_input_bytes: int = 2**30,
    *,
    max_bad_row_fraction: float = 0.01,
    data_checks: str = "warn",
) -> IngestSummary:
    """Process every new input under `incoming/` once; the run goes on whatever a single input holds.

    Args:
        store: the store whose `incoming/` is read.
        run_id: recorded with every entry and quarantine record.
        max_input_bytes: larger inputs are quarantined unread.
        max_bad_row_fraction: a CSV with at most this share of bad rows is accepted without them.
        data_checks: "warn" records failing data checks; "fail" also quarantines the input.

    The defaults are `RunConfig`'s.
    """
    if data_checks not in get_args(ChecksMode):
        raise ValueError(f"data_checks must be 'warn' or 'fail', not {data_checks!r}")
    manifest = load_manifest(store)
    units, already_seen = plan_units(store.list(INCOMING), manifest)
    reference = combine(manifest.train_summaries())
    run = _Run(store, manifest, run_id, reference, max_input_bytes, max_bad_row_fraction, data_checks)
    new_entries: list[ManifestEntry] = []
    for unit in units:
        new_entries.extend(_ingest_unit(run, unit))
    updated = append_entries(store, new_entries) if new_entries else manifest
    outcomes = tuple(InputOutcome.of(e) for e in new_entries)
    return IngestSummary(outcomes, already_seen, updated.digest(), len(updated.batches()))
