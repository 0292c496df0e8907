"""The watcher's core (no Prefect here): which files under `incoming/` are complete, new, and not yet announced.

Completeness rule: a file counts as complete once it is listed with the **same fingerprint in two consecutive
polls** (ETag on S3, size and mtime locally). The previous poll's listing is kept in the store itself, in
`datasets/watch-state.json`, so any machine can run the next poll. On S3 an object only becomes visible once
its upload finished, so the rule costs one poll interval there; in a folder it also skips files still being
copied in. No completion marker is needed from producers.

A complete file is new when the manifest has not seen it (same key and fingerprint). New files are announced
once, as one burst with a deterministic event id (uuid5 of the store and the sorted keys and fingerprints):
a repeated or concurrent poll of the same burst yields the same id, which Prefect's trigger evaluation
deduplicates. Announced files are remembered in the state until ingested; one still not ingested after
`REANNOUNCE_AFTER` is announced again (a lost event costs at most that delay; the nightly run also picks it up).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.manifest import load_manifest
from tasks.quarantine import INCOMING
from tasks.store import ObjectInfo, PreconditionFailed, Store, read_json_with_etag

WATCH_STATE_KEY = "datasets/watch-state.json"
WATCH_STATE_FORMAT = 1
EVENT_NAME = "mnist.data.arrived"
RESOURCE_PREFIX = "mnist.store."
# fixed namespace of this project's event ids: the same burst always gets the same id
EVENT_NAMESPACE = uuid.UUID("6f1f0c9e-4d7a-5b8e-9a43-2c1d5e7b9f10")
REANNOUNCE_AFTER = timedelta(hours=1)
MAX_PAYLOAD_KEYS = 500  # a huge burst lists its first keys and says how many there are
MAX_CONFLICT_RETRIES = 10


@dataclass(frozen=True)
class WatchState:
    """What the previous poll saw (`listing`) and which new files were announced, when and under which event."""

    listing: dict[str, str] = field(default_factory=dict)
    announced: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> {fingerprint, at, event_id}
    polled_at: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class Poll:
    """One poll's findings; `event_id` is set when `new` holds a burst to announce."""

    store: str
    polled_at: str
    listed: int
    new: tuple[ObjectInfo, ...]
    still_writing: tuple[str, ...]  # first seen or changed since the previous poll: looked at again next time
    pending: tuple[str, ...]  # announced earlier and not ingested yet
    event_id: str | None

    def payload(self) -> dict[str, Any]:
        """The `mnist.data.arrived` payload: the store and the new keys (with size and fingerprint)."""
        files = [{"key": i.key, "size": i.size, "fingerprint": i.fingerprint} for i in self.new]
        return {
            "store": self.store,
            "keys": [i.key for i in self.new[:MAX_PAYLOAD_KEYS]],
            "files": files[:MAX_PAYLOAD_KEYS],
            "n_files": len(self.new),
            "truncated": len(self.new) > MAX_PAYLOAD_KEYS,
            "polled_at": self.polled_at,
        }

    def resource(self) -> dict[str, str]:
        return {"prefect.resource.id": RESOURCE_PREFIX + self.store, "prefect.resource.name": self.store}

    def describe(self) -> str:
        """One line for people: what this poll found."""
        if self.new:
            return f"{len(self.new)} new complete file(s) in {self.store}: announced as {EVENT_NAME} {self.event_id}"
        parts = [f"nothing new in {self.store} ({self.listed} file(s) listed"]
        if self.still_writing:
            parts.append(f"{len(self.still_writing)} first seen or still changing: checked again next poll")
        if self.pending:
            parts.append(f"{len(self.pending)} announced earlier, waiting for a retrain run")
        return "; ".join(parts) + ")"


def event_id(store_uri: str, files: list[ObjectInfo] | tuple[ObjectInfo, ...]) -> uuid.UUID:
    """Deterministic: the same store and the same (key, fingerprint) set always give the same id."""
    lines = sorted(f"{info.key}\t{info.fingerprint}" for info in files)
    return uuid.uuid5(EVENT_NAMESPACE, store_uri + "\n" + "\n".join(lines))


def load_state(store: Store) -> WatchState:
    document, etag = read_json_with_etag(store, WATCH_STATE_KEY)
    if document is None:
        return WatchState()
    return WatchState(document.get("listing", {}), document.get("announced", {}), document.get("polled_at"), etag)


def encode_state(state: WatchState) -> bytes:
    document = {
        "format": WATCH_STATE_FORMAT,
        "polled_at": state.polled_at,
        "listing": state.listing,
        "announced": state.announced,
    }
    return json.dumps(document, indent=1, sort_keys=True).encode()


def _expired(at: str, now: datetime) -> bool:
    return now - datetime.fromisoformat(at) >= REANNOUNCE_AFTER


def plan_poll(
    store_uri: str, listing: list[ObjectInfo], state: WatchState, ingested: set[tuple[str, str]], now: datetime
) -> tuple[Poll, WatchState]:
    """Pure decision: this poll's findings and the state to store for the next one.

    `ingested` holds the (key, fingerprint) pairs the manifest has seen.
    """
    at = now.isoformat(timespec="milliseconds")
    waiting = [info for info in listing if (info.key, info.fingerprint) not in ingested]
    still_writing = tuple(info.key for info in waiting if state.listing.get(info.key) != info.fingerprint)
    announced: dict[str, dict[str, str]] = {}
    new: list[ObjectInfo] = []
    for info in waiting:
        if state.listing.get(info.key) != info.fingerprint:
            continue  # first seen, or changed since the previous poll: maybe still being written
        earlier = state.announced.get(info.key)
        if earlier and earlier["fingerprint"] == info.fingerprint and not _expired(earlier["at"], now):
            announced[info.key] = earlier
        else:
            new.append(info)
    pending = tuple(announced)
    burst_id = str(event_id(store_uri, new)) if new else None
    for info in new:
        announced[info.key] = {"fingerprint": info.fingerprint, "at": at, "event_id": str(burst_id)}
    poll = Poll(store_uri, at, len(listing), tuple(new), still_writing, pending, burst_id)
    next_state = WatchState({info.key: info.fingerprint for info in listing}, announced, at, state.etag)
    return poll, next_state


def poll_landing_zone(store: Store, now: datetime | None = None) -> Poll:
    """List `incoming/`, decide, and store the state for the next poll (a conditional write: two pollers at
    once never both announce the same burst from the same state). Returns what to announce, if anything."""
    for _ in range(MAX_CONFLICT_RETRIES):
        moment = now or datetime.now(UTC)
        state = load_state(store)
        listing = store.list(INCOMING)
        manifest = load_manifest(store)
        ingested = {(entry.key, entry.fingerprint) for entry in manifest.entries}
        poll, next_state = plan_poll(store.uri, listing, state, ingested, moment)
        try:
            store.put_if(WATCH_STATE_KEY, encode_state(next_state), state.etag, "application/json")
        except PreconditionFailed:
            continue  # another poll wrote first: decide again from what it saw
        return poll
    raise PreconditionFailed(f"{WATCH_STATE_KEY} kept changing under {MAX_CONFLICT_RETRIES} attempts to update it")
