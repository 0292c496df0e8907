"""A watcher that stops a helper process once the process that started it is gone, however it went.

A process killed with SIGKILL runs no exit handlers, so the helpers it started (Prefect's ephemeral API server)
would run on, unowned, for good. `python -m tasks.orphans PARENT CHILD CHILD_START` sleeps until PARENT is gone,
then stops CHILD if it is still the same process (its start time guards against a reused PID). Linux only: it
reads /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, …), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the fields that follow come after its last ")"
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> int | None:
    """`pid`'s start time in clock ticks since boot, or None when there is no such live process (or no /proc)."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):  # a zombie has ended: only its exit status is left
        return None
    return int(fields[19])


def stop_when_orphaned(parent: int, child: int, child_start: int, poll: float = POLL_SECONDS) -> bool:
    """Wait while `parent` is this process's parent, then stop `child` (SIGTERM, then SIGKILL after a grace).

    Returns whether `child` had to be stopped (False when it had gone already: the parent stopped it itself).
    """
    while os.getppid() == parent:
        time.sleep(poll)
    if process_start(child) != child_start:
        return False
    with contextlib.suppress(ProcessLookupError):  # it may end on its own between the check and the signal
        os.kill(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while process_start(child) == child_start and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_start(child) == child_start:
            os.kill(child, signal.SIGKILL)
    return True


def watch_on_behalf_of_this_process(child: int) -> subprocess.Popen[bytes] | None:
    """Start a watcher that stops `child` once this process is gone; None where /proc is not there to tell."""
    child_start = process_start(child)
    if child_start is None:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "tasks.orphans", str(os.getpid()), str(child), str(child_start)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],  # so `-m tasks.orphans` resolves however the run was started
        start_new_session=True,  # a signal to the run's process group must not take the watcher with it
    )


def main(argv: list[str]) -> int:
    parent, child, child_start = (int(value) for value in argv)
    stop_when_orphaned(parent, child, child_start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
