"""The watcher: completeness across two polls, comparison with the manifest, one deterministic event per burst."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from flows.watch import watch_incoming
from tasks.ingest import ingest
from tasks.sample import digits_to_csv
from tasks.store import ObjectInfo, open_store
from tasks.watch import (
    EVENT_NAME,
    REANNOUNCE_AFTER,
    WATCH_STATE_KEY,
    WatchState,
    event_id,
    plan_poll,
    poll_landing_zone,
)

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
STORE = "s3://bucket/pipeline"


def csv_bytes(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 6:22, 6:22] = rng.integers(0, 256, (n, 16, 16))
    return digits_to_csv(images, (np.arange(n) % 10).astype(np.uint8))


def info(key: str, fingerprint: str, size: int = 10) -> ObjectInfo:
    return ObjectInfo(f"incoming/{key}", size, fingerprint)


def polls(listings: list[list[ObjectInfo]], ingested: set[tuple[str, str]] | None = None, step: float = 60) -> list:
    """Run `plan_poll` over successive listings, carrying the state as the store would."""
    state, found = WatchState(), []
    for i, listing in enumerate(listings):
        poll, state = plan_poll(STORE, listing, state, ingested or set(), T0 + timedelta(seconds=step * i))
        found.append(poll)
    return found


def test_a_file_is_announced_once_it_is_unchanged_across_two_polls() -> None:
    a = info("batch-1/a.csv", "etag-a")
    first, second, third = polls([[a], [a], [a]])
    assert first.new == () and first.still_writing == (a.key,) and first.event_id is None
    assert second.new == (a,) and second.event_id == str(event_id(STORE, [a]))
    assert third.new == () and third.pending == (a.key,) and third.event_id is None


def test_a_file_still_growing_waits_until_it_stops_changing() -> None:
    growing = [info("big.csv", f"{size}-1", size) for size in (100, 200, 300)]
    found = polls([[growing[0]], [growing[1]], [growing[2]], [growing[2]]])
    assert [p.new for p in found[:3]] == [(), (), ()]
    assert [p.still_writing for p in found[:3]] == [(growing[0].key,)] * 3
    assert found[3].new == (growing[2],)


def test_files_in_the_manifest_are_not_announced() -> None:
    seen, fresh = info("old.csv", "e1"), info("new.csv", "e2")
    found = polls([[seen, fresh], [seen, fresh]], ingested={(seen.key, "e1")})
    assert found[0].still_writing == (fresh.key,)
    assert found[1].new == (fresh,)
    rewritten = info("old.csv", "e3")  # new content under an old key is new data
    assert polls([[rewritten], [rewritten]], ingested={(seen.key, "e1")})[1].new == (rewritten,)


def test_two_arrivals_in_quick_succession_are_two_bursts_with_their_own_ids() -> None:
    a, b = info("a.csv", "ea"), info("b.csv", "eb")
    found = polls([[a], [a, b], [a, b]])
    assert found[1].new == (a,) and found[2].new == (b,)
    assert found[2].pending == (a.key,)
    assert found[1].event_id != found[2].event_id


def test_event_ids_are_deterministic() -> None:
    a, b = info("a.csv", "ea"), info("b.csv", "eb")
    assert event_id(STORE, [a, b]) == event_id(STORE, (b, a))
    assert event_id(STORE, [a]) != event_id(STORE, [info("a.csv", "changed")])
    assert event_id(STORE, [a]) != event_id("s3://other/pipeline", [a])
    # the same burst seen by another poller (same state) gets the same id: Prefect drops the repeat
    again = polls([[a, b], [a, b]])[1]
    assert again.event_id == polls([[b, a], [b, a]])[1].event_id


def test_an_announced_file_never_ingested_is_announced_again_after_the_delay() -> None:
    a = info("a.csv", "ea")
    state = WatchState()
    for minute in (0, 1):
        poll, state = plan_poll(STORE, [a], state, set(), T0 + timedelta(minutes=minute))
    assert poll.new == (a,)
    later = T0 + timedelta(minutes=1) + REANNOUNCE_AFTER
    soon, _ = plan_poll(STORE, [a], state, set(), later - timedelta(seconds=1))
    again, _ = plan_poll(STORE, [a], state, set(), later)
    assert soon.new == () and again.new == (a,) and again.event_id == poll.event_id


def test_the_payload_names_the_new_keys() -> None:
    a, b = info("x/a.csv", "ea", 5), info("holdout/b.csv", "eb", 7)
    payload = polls([[a, b], [a, b]])[1].payload()
    assert payload["keys"] == [a.key, b.key] and payload["n_files"] == 2 and payload["store"] == STORE
    assert payload["files"][1] == {"key": b.key, "size": 7, "fingerprint": "eb"}
    json.dumps(payload)  # it travels as JSON


def test_polls_on_a_real_store_keep_their_state_there_and_respect_the_manifest(store_uri: str) -> None:
    store = open_store(store_uri)
    store.put("incoming/batch-1/digits.csv", csv_bytes(50, 1))

    first = poll_landing_zone(store)
    second = poll_landing_zone(store)

    assert first.new == () and second.new and [i.key for i in second.new] == ["incoming/batch-1/digits.csv"]
    assert json.loads(store.get(WATCH_STATE_KEY))["listing"] == {i.key: i.fingerprint for i in second.new}
    ingest(store, "run-1")  # what the triggered retrain run does first
    store.put("incoming/batch-2/digits.csv", csv_bytes(40, 2))
    third, fourth = poll_landing_zone(store), poll_landing_zone(store)
    assert third.new == () and third.pending == () and third.still_writing == ("incoming/batch-2/digits.csv",)
    assert [i.key for i in fourth.new] == ["incoming/batch-2/digits.csv"]


def test_two_pollers_at_once_announce_a_burst_only_once(store_uri: str) -> None:
    store = open_store(store_uri)
    store.put("incoming/a.csv", csv_bytes(20, 3))
    poll_landing_zone(store)
    barrier, results = threading.Barrier(2), []

    def poller() -> None:
        barrier.wait(timeout=30)
        results.append(poll_landing_zone(open_store(store_uri)))

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(len(p.new) for p in results) == [0, 1]


@pytest.fixture
def captured_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Every event the flows emit, captured by Prefect's own asserting client instead of being sent."""
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)
    events: list = []

    def drained() -> list:
        worker.drain()
        client = AssertingEventsClient.last
        events[:] = [e for e in (client.events if client else []) if e.event == EVENT_NAME]
        return events

    yield drained  # type: ignore[misc]
    worker.drain()


def test_the_flow_emits_one_event_per_burst_with_the_new_keys(store_uri: str, captured_events) -> None:
    store = open_store(store_uri)
    store.put("incoming/batch-1/digits.csv", csv_bytes(30, 4))

    first = watch_incoming(store_uri)
    second = watch_incoming(store_uri)
    third = watch_incoming(store_uri)

    assert first["event"] is None and "first seen or still changing" in first["message"]
    assert second["event"] == EVENT_NAME and second["new_keys"] == ["incoming/batch-1/digits.csv"]
    assert third["event"] is None and third["pending"] == ["incoming/batch-1/digits.csv"]
    events = captured_events()
    assert len(events) == 1
    assert str(events[0].id) == second["event_id"]
    assert events[0].payload["keys"] == ["incoming/batch-1/digits.csv"]
    assert events[0].resource.id == f"mnist.store.{store.uri}"
