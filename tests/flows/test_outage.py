"""Publish survives a storage outage: the test's S3 server is stopped and restarted mid-publish."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from flows.retrain import retrain
from tasks.config import RunConfig
from tasks.publish import REQUIRED_FILES, PublishResult
from tests.conftest import S3Endpoint

PREFIX = "pipeline"


@pytest.fixture
def private_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    """An S3 endpoint of this test's own, since the test stops it."""
    endpoint = S3Endpoint()
    endpoint.start()
    for name, value in endpoint.env().items():
        monkeypatch.setenv(name, value)
    yield endpoint
    endpoint.stop()


def land(endpoint: S3Endpoint, bucket: str, mnist: dict[str, np.ndarray]) -> None:
    for key, x, y in (
        ("incoming/train.npz", mnist["x_train"][:1500], mnist["y_train"][:1500]),
        ("incoming/holdout/test.npz", mnist["x_test"][:300], mnist["y_test"][:300]),
    ):
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y)
        endpoint.client().put_object(Bucket=bucket, Key=f"{PREFIX}/{key}", Body=buffer.getvalue())  # type: ignore[attr-defined]


def stop_when_publish_starts(
    endpoint: S3Endpoint, bucket: str, known: set[str], outage_seconds: float | None, stopped: threading.Event
) -> None:
    """Watch for a new version's metrics.json (publish has begun), then take the endpoint away."""
    client = endpoint.client()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        listing = client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/models/")  # type: ignore[attr-defined]
        keys = {item["Key"] for item in listing.get("Contents", [])}
        if any(k.endswith("/metrics.json") and k.split("/")[2] not in known for k in keys):
            endpoint.stop()
            stopped.set()
            if outage_seconds is not None:
                time.sleep(outage_seconds)
                endpoint.start()
            return
        time.sleep(0.05)


def champion_is_complete(endpoint: S3Endpoint, bucket: str) -> str:
    client = endpoint.client()
    body = client.get_object(Bucket=bucket, Key=f"{PREFIX}/models/champion.json")["Body"].read()  # type: ignore[attr-defined]
    version = json.loads(body)["version"]
    for name in REQUIRED_FILES:
        client.head_object(Bucket=bucket, Key=f"{PREFIX}/models/{version}/{name}")  # type: ignore[attr-defined]
    return str(version)


@pytest.mark.parametrize("outage_seconds", [4.0, None], ids=["short-outage-bridged", "long-outage-fails-cleanly"])
def test_publish_through_an_outage(private_s3: S3Endpoint, mnist: dict, outage_seconds: float | None) -> None:
    bucket = private_s3.new_bucket()
    land(private_s3, bucket, mnist)
    store = f"s3://{bucket}/{PREFIX}"
    first = retrain(RunConfig(store=store, epochs=1, gate_floor=0.0))
    assert isinstance(first, PublishResult) and first.promoted

    stopped = threading.Event()
    watcher = threading.Thread(
        target=stop_when_publish_starts,
        args=(private_s3, bucket, {first.version}, outage_seconds, stopped),
        daemon=True,
    )
    watcher.start()
    state = retrain(
        RunConfig(store=store, epochs=1, force=True, force_promote=True, reason="outage drill"), return_state=True
    )
    watcher.join(timeout=120)
    assert stopped.is_set(), "the endpoint was never taken away mid-publish"
    if outage_seconds is None:
        private_s3.start()  # the outage ends only after the run gave up

    champion = champion_is_complete(private_s3, bucket)
    if outage_seconds is not None:
        assert state.is_completed(), state.message
        result = state.result()
        assert isinstance(result, PublishResult) and champion == result.version != first.version
    else:
        assert state.is_failed()
        assert "unreachable" in str(state.result(raise_on_failure=False))
        assert champion == first.version  # never a pointer to a version with missing files
