"""The watcher that stops a run's helper process (Prefect's ephemeral API) once the run is gone, even by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.orphans import process_start, stop_when_orphaned

REPO = Path(__file__).resolve().parents[2]
BOUND_S = 20

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="/proc is absent (not Linux): the watcher reads /proc/PID/stat"
)

# a stand-in for `mnist-pipeline run`: starts a long-lived helper, hands it to a watcher, then waits (or exits)
RUN = """
import subprocess, sys, time
from tasks.orphans import watch_on_behalf_of_this_process
helper = subprocess.Popen(["sleep", "300"])
watcher = watch_on_behalf_of_this_process(helper.pid)
print(helper.pid, watcher.pid, flush=True)
if sys.argv[1] == "exit-cleanly":
    helper.terminate()
    helper.wait()
    sys.exit(0)
time.sleep(300)
"""


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while process_start(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _start_run(mode: str) -> tuple[subprocess.Popen[str], int, int]:
    run = subprocess.Popen([sys.executable, "-c", RUN, mode], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    helper, watcher = (int(pid) for pid in run.stdout.readline().split())
    return run, helper, watcher


def test_a_killed_run_leaves_no_helper_behind() -> None:
    run, helper, watcher = _start_run("wait")
    try:
        assert process_start(helper) is not None and process_start(watcher) is not None
        time.sleep(1.5)  # the watcher keeps watching while the run lives
        assert process_start(helper) is not None
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=BOUND_S)
        assert _gone_within(helper, BOUND_S), "the helper outlived the killed run"
        assert _gone_within(watcher, BOUND_S), "the watcher did not end after stopping the helper"
    finally:
        for pid in (helper, watcher):
            if process_start(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        run.kill()


def test_after_a_clean_exit_the_watcher_ends_without_touching_anything() -> None:
    run, helper, watcher = _start_run("exit-cleanly")
    assert run.wait(timeout=BOUND_S) == 0
    assert process_start(helper) is None
    assert _gone_within(watcher, BOUND_S)


def test_a_reused_pid_is_not_stopped() -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        started = process_start(bystander.pid)
        assert started is not None
        # -1 is never our parent, so it acts at once; the start time does not match, so it must leave it alone
        assert stop_when_orphaned(parent=-1, child=bystander.pid, child_start=started + 1, poll=0.01) is False
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_missing_or_finished_process_has_no_start() -> None:
    finished = subprocess.Popen(["true"])
    time.sleep(0.5)  # finished but not reaped yet: a zombie counts as gone
    assert process_start(finished.pid) is None
    finished.wait()
    assert process_start(finished.pid) is None
    assert isinstance(process_start(os.getpid()), int)
