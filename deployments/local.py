"""A local Prefect server as a child process, and `make serve`: that server plus `mnist-pipeline serve`.

`python -m deployments.local [--port 4200]` starts `prefect server start` on loopback with its default
embedded SQLite database (under PREFECT_HOME), waits until `/api/health` answers, prints the UI address, then
serves the deployments against it until Ctrl-C, and stops both. The tests use `PrefectServer` the same way.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

HEALTH_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0


class ServerFailed(RuntimeError):
    """The Prefect server did not come up (its log's tail is in the message)."""


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Call `check()` until it returns something truthy; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def stop_process(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; only this process (started by us) is signalled."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class PrefectServer:
    """`prefect server start` on 127.0.0.1:`port`, its log in `log_path`."""

    def __init__(self, port: int, log_path: Path, env: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.port, self.host, self.log_path = port, host, log_path
        self.env = {**os.environ, **(env or {})}
        self.api_url = f"http://{host}:{port}/api"
        self.ui_url = f"http://{host}:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
        if self.healthy():
            raise ServerFailed(f"something already answers on {self.ui_url}: pick another port")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", self.host, "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise ServerFailed(f"prefect server exited with {self.process.returncode}:\n{self.log_tail()}")
            return self.healthy()

        try:
            wait_until(up, timeout, f"Prefect server health at {self.api_url}/health")
        except TimeoutError as error:
            self.stop()
            raise ServerFailed(f"{error}\n{self.log_tail()}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PrefectServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local Prefect server (SQLite) and the served deployments.")
    parser.add_argument("--port", type=int, default=4200, help="the server's port on 127.0.0.1 (default: 4200)")
    parser.add_argument("--store", help="store URI (default: $MNIST_STORE, else data/store)")
    args = parser.parse_args(argv)
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    server = PrefectServer(args.port, home / "mnist-pipeline-server.log")
    print(f"starting a Prefect server on {server.ui_url} (log: {server.log_path}) ...", flush=True)
    try:
        server.start()
    except ServerFailed as error:
        print(f"make serve: error: {error}", file=sys.stderr)
        return 1
    print(f"Prefect UI: {server.ui_url}  (API: {server.api_url}); Ctrl-C stops the server and the deployments")
    command = [sys.executable, "-m", "flows.cli", "serve", *(["--store", args.store] if args.store else [])]
    signal.signal(signal.SIGTERM, _interrupted)  # a supervisor's stop ends both processes like Ctrl-C does
    serve = subprocess.Popen(command, env={**server.env, "PREFECT_API_URL": server.api_url})
    try:
        return serve.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        stop_process(serve)  # the served deployments pause their schedules while the API is still up
        server.stop()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
