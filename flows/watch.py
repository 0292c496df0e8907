"""The watcher flow: one poll of `incoming/`; one `mnist.data.arrived` event per burst of complete new files.

The rules (completeness across two polls, comparison with the manifest, deterministic event id) live in
`tasks.watch`; this flow stores the poll's state and emits the event the retrain deployment's trigger expects.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.events import emit_event

from flows.steps import STORE_IO
from tasks.config import resolve_store_uri
from tasks.store import open_store
from tasks.watch import EVENT_NAME, Poll, poll_landing_zone


@task(name="poll-landing-zone", **STORE_IO)  # type: ignore[call-overload]
def poll(store_uri: str) -> Poll:
    return poll_landing_zone(open_store(store_uri))


def announce(found: Poll) -> bool:
    """Emit the burst's event under its deterministic id; False when no Prefect API takes events."""
    assert found.event_id is not None
    event = emit_event(EVENT_NAME, found.resource(), payload=found.payload(), id=uuid.UUID(found.event_id))
    return event is not None


@flow(name="watch-incoming", log_prints=True)
def watch_incoming(store: str | None = None) -> dict[str, Any]:
    """Poll the landing zone once; announce complete new files with one `mnist.data.arrived` event."""
    found = poll(resolve_store_uri(store))
    emitted = announce(found) if found.new else False
    get_run_logger().info(found.describe())
    return {
        "event": EVENT_NAME if emitted else None,
        "event_id": found.event_id if emitted else None,
        "new_keys": [info.key for info in found.new],
        "still_writing": list(found.still_writing),
        "pending": list(found.pending),
        "listed": found.listed,
        "message": found.describe(),
    }
