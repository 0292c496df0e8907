"""`datasets/manifest.json`: every input ever seen, with its content hash and what became of it.

Updates are read-modify-write under a conditional write, so two runs ingesting at once never lose an entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from tasks.store import PreconditionFailed, Store, read_json_with_etag

if TYPE_CHECKING:  # tasks.data_checks imports tasks.dataset, which imports this module
    from tasks.data_checks import BatchSummary

MANIFEST_KEY = "datasets/manifest.json"
MANIFEST_FORMAT = 1
MAX_CONFLICT_RETRIES = 20
Outcome = Literal["accepted", "quarantined", "duplicate"]


@dataclass(frozen=True)
class BatchRef:
    """One stored slice of validated digits (a `.npz` under `datasets/`)."""

    key: str
    split: Literal["train", "holdout"]
    rows: int
    summary: BatchSummary | None = None  # counts the data checks compare later batches with

    @staticmethod
    def from_json(raw: dict[str, Any]) -> BatchRef:
        return BatchRef(**_known(BatchRef, raw))


def _known(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """Only the fields `cls` has: a manifest written by a newer version may carry more."""
    names = {f.name for f in fields(cls)}
    return {name: value for name, value in raw.items() if name in names}


@dataclass(frozen=True)
class ManifestEntry:
    """What became of one input.

    `rows_accepted + rows_rejected` is the input's row count whenever it is known (a file quarantined before
    its rows could be counted has both at 0). A partially accepted CSV names its rejected rows' file in
    `rejected_rows_key`; `checks` holds the data checks' record (see `tasks.data_checks.check_batch`).
    """

    key: str
    sha256: str | None  # None: refused unread (over the size limit)
    outcome: Outcome
    rows_accepted: int
    rows_rejected: int
    split: str
    ingested_at: str
    run_id: str
    size: int
    fingerprint: str
    batches: tuple[BatchRef, ...] = ()
    reason: str | None = None
    part_of: str | None = None  # an IDX labels file points at its images file
    rejected_rows_key: str | None = None
    checks: dict[str, Any] | None = None

    @staticmethod
    def from_json(raw: dict[str, Any]) -> ManifestEntry:
        batches = tuple(BatchRef.from_json(b) for b in raw.get("batches", []))
        return ManifestEntry(**{**_known(ManifestEntry, raw), "batches": batches})


@dataclass
class Manifest:
    entries: list[ManifestEntry] = field(default_factory=list)
    etag: str | None = None  # of the stored document this was read from; None when it did not exist

    def seen_fingerprint(self, key: str, fingerprint: str) -> bool:
        return any(e.key == key and e.fingerprint == fingerprint for e in self.entries)

    def seen_content(self, key: str, sha256: str | None) -> bool:
        return any(e.key == key and e.sha256 == sha256 for e in self.entries)

    def first_with_content(self, sha256: str) -> ManifestEntry | None:
        return next((e for e in self.entries if e.sha256 == sha256 and e.outcome == "accepted"), None)

    def batches(self) -> list[BatchRef]:
        """Every accepted batch, in ingestion order, each once."""
        seen: dict[str, BatchRef] = {}
        for entry in self.entries:
            if entry.outcome == "accepted":
                for batch in entry.batches:
                    seen.setdefault(batch.key, batch)
        return list(seen.values())

    def train_summaries(self) -> list[BatchSummary]:
        """The summaries of every accepted training batch: the data checks' reference."""
        return [b.summary for b in self.batches() if b.split == "train" and b.summary is not None]

    def digest(self) -> str:
        """Names the accepted data: changes exactly when a batch is added."""
        joined = "\n".join(sorted(b.key for b in self.batches()))
        return hashlib.sha256(joined.encode()).hexdigest()


def _encode(entries: list[ManifestEntry]) -> bytes:
    document = {"format": MANIFEST_FORMAT, "entries": [asdict(e) for e in entries]}
    return json.dumps(document, indent=1, ensure_ascii=False).encode()


def load_manifest(store: Store) -> Manifest:
    document, etag = read_json_with_etag(store, MANIFEST_KEY)
    if document is None:
        return Manifest()
    return Manifest([ManifestEntry.from_json(e) for e in document.get("entries", [])], etag)


def append_entries(store: Store, new_entries: list[ManifestEntry]) -> Manifest:
    """Add entries under a conditional write, re-reading and merging when another run wrote first."""
    for _ in range(MAX_CONFLICT_RETRIES):
        manifest = load_manifest(store)
        present = {(e.key, e.sha256, e.part_of) for e in manifest.entries}
        merged = manifest.entries + [e for e in new_entries if (e.key, e.sha256, e.part_of) not in present]
        try:
            etag = store.put_if(MANIFEST_KEY, _encode(merged), manifest.etag, "application/json")
        except PreconditionFailed:
            continue
        return Manifest(merged, etag)
    raise PreconditionFailed(f"{MANIFEST_KEY} kept changing under {MAX_CONFLICT_RETRIES} attempts to update it")
