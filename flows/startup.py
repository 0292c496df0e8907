"""Start-up of a one-off run: Prefect's API and the TensorFlow import, side by side rather than one after the other."""

from __future__ import annotations

import time

from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

from tasks.orphans import watch_on_behalf_of_this_process
from tasks.training import import_tensorflow_in_background

TENSORFLOW_IMPORT_WAIT_SECONDS = 300  # the import takes 8–15 s; a wedged one is left to the training step


def start_api_and_tensorflow() -> dict[str, float]:
    """Bring up (or reach) the Prefect API while TensorFlow imports on another thread; wait for both.

    Returns seconds from the call: `prefect_api` until the API answered, `ready` until TensorFlow was imported too.
    """
    started = time.perf_counter()
    ephemeral = not get_current_settings().api.url
    if ephemeral:
        # the ephemeral API's own (heavy) imports happen here, before the thread starts, so the two threads never
        # import the same modules at once
        import prefect.server.api.server  # noqa: F401

    importing = import_tensorflow_in_background()
    with get_client(sync_client=True) as client:
        client.hello()
    if ephemeral:
        stop_ephemeral_api_with_this_process()
    api_seconds = time.perf_counter() - started
    importing.join(TENSORFLOW_IMPORT_WAIT_SECONDS)
    return {"prefect_api": round(api_seconds, 2), "ready": round(time.perf_counter() - started, 2)}


def stop_ephemeral_api_with_this_process() -> None:
    """Make sure the ephemeral API server does not outlive this process, even if it is killed with SIGKILL.

    Prefect stops the server from an exit handler, which a killed process never runs (and `kill -9` is how a
    training run is interrupted, to be resumed later): a watcher process stops the server then.
    """
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one instance the client started (Prefect keeps one per port)
    if server.server_process is not None and server.server_process.poll() is None:
        watch_on_behalf_of_this_process(server.server_process.pid)
