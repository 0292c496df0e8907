"""The report in a real browser: headless Chromium opens it through a presigned URL of the test's S3 endpoint.

Chromium is driven over the DevTools protocol (a websocket on loopback), so the test sees what a user
would: every image decoded, no console or page errors, no horizontal scrolling on a phone, and it keeps
full-page screenshots at a laptop and a phone width under the test's tmp_path. Nothing is downloaded:
Chromium is the distribution's package, talking only to the loopback S3 endpoint.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tasks.report import render_report
from tests.conftest import S3Endpoint

STEP_TIMEOUT = 30.0  # seconds for any one DevTools exchange
LAUNCH_TIMEOUT = 30.0
WIDTHS = {"laptop": (1280, 800, False), "phone": (390, 844, True)}
HOSTILE_KEY = "<script>alert(1)</script>.csv"
# Reads back what the user would see: each image's decoded size, and whether the page scrolls sideways.
PAGE_PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({w: i.naturalWidth, h: i.naturalHeight, done: i.complete})),
  scrollWidth: document.documentElement.scrollWidth,
  h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
  scripts: document.scripts.length,
  hostile: Array.from(document.querySelectorAll('#data code')).map(c => c.textContent),
})"""


def _chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return binary


class DevTools:
    """A minimal DevTools protocol client over one browser websocket, with one page session attached."""

    def __init__(self, socket: Connection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        """Send one command and wait (bounded) for its answer, keeping the events that arrive meanwhile."""
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._socket.recv(timeout=max(deadline - time.monotonic(), 0.001)))
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result") or {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
        """Wait (bounded) for the first event ``method`` not yet consumed."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method and not event.get("_seen"):
                    event["_seen"] = True
                    return event
            self.events.append(json.loads(self._socket.recv(timeout=max(deadline - time.monotonic(), 0.001))))

    def errors(self) -> list[str]:
        """Everything the page reported as an error: uncaught exceptions, console errors, failed loads."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params") or {}
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails"))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
                found.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and (params.get("entry") or {}).get("level") == "error":
                found.append(str(params["entry"].get("text"))[:500])
        return found


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    """Headless Chromium on a loopback DevTools port, with a fresh page attached; always shut down."""
    binary = _chromium()
    profile = tmp_path / "chromium-profile"
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions", "--no-proxy-server",
        "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank",
    ]  # fmt: skip
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Port 0 lets Chromium pick a free port and write it, with the browser's socket path, to this file.
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + LAUNCH_TIMEOUT
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"chromium did not start: {(tmp_path / 'chromium.log').read_text()[-2000:]}")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", proxy=None, max_size=None, open_timeout=STEP_TIMEOUT) as socket:
            devtools = DevTools(socket)
            target = devtools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            devtools.session = devtools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log"):
                devtools.send(f"{domain}.enable")
            yield devtools
            devtools.session = None
            devtools.send("Browser.close")
    finally:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _probe(devtools: DevTools) -> dict[str, Any]:
    result = devtools.send("Runtime.evaluate", {"expression": PAGE_PROBE, "returnByValue": True})
    return dict(json.loads(result["result"]["value"]))


def _report_html() -> str:
    """A full report: champion comparison, calibration, robustness, drift, and a hostile quarantined file."""
    from tests.unit.test_report import GATED, _holdout, _holdout_like, _rich_metrics

    images, labels, probabilities = _holdout(2_000)
    champion = _holdout_like(labels, 7)
    metrics = _rich_metrics(labels, probabilities, champion)
    assert any(item["key"] == HOSTILE_KEY for item in metrics["data"]["inputs"])
    return render_report(metrics, GATED, images, labels, probabilities, champion_probabilities=champion).html


def test_report_opens_from_a_presigned_url(chromium: DevTools, s3_endpoint: S3Endpoint, tmp_path: Path) -> None:
    html = _report_html()
    client: Any = s3_endpoint.client()
    bucket, key = s3_endpoint.new_bucket(), "models/v1/report.html"
    client.put_object(Bucket=bucket, Key=key, Body=html.encode(), ContentType="text/html; charset=utf-8")
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    assert url.startswith(s3_endpoint.url) and "Signature" in url

    for name, (width, height, mobile) in WIDTHS.items():
        chromium.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        chromium.send("Page.navigate", {"url": url})
        chromium.wait_for("Page.loadEventFired")
        page = _probe(chromium)

        assert page["h2"][0] == "Verdict" and page["h2"][-1] == "Lineage" and len(page["h2"]) == 9
        assert page["scripts"] == 0
        images = page["images"]
        assert len(images) > 40
        assert all(image["done"] and image["w"] > 0 and image["h"] > 0 for image in images), images
        # The hostile file name is shown as text: no script ran, the name reads as written.
        assert HOSTILE_KEY in page["hostile"]
        # Readable on the device: the page never scrolls sideways (wide tables scroll inside their card).
        assert page["scrollWidth"] <= width, f"{name}: page is {page['scrollWidth']}px wide"

        shot = chromium.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, timeout=60)
        path = tmp_path / f"report-{name}-{width}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        assert path.stat().st_size > 10_000

    assert chromium.errors() == []


def test_hostile_dialog_never_opens(chromium: DevTools, tmp_path: Path) -> None:
    """Opened from a file: an alert() smuggled in a file name would open a dialog; none does."""
    path = tmp_path / "report.html"
    path.write_text(_report_html(), encoding="utf-8")
    chromium.send("Page.navigate", {"url": path.as_uri()})
    chromium.wait_for("Page.loadEventFired")
    assert all(image["w"] > 0 for image in _probe(chromium)["images"])
    assert not [e for e in chromium.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert chromium.errors() == []
