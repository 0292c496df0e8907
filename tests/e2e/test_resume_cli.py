"""`mnist-pipeline run` killed with SIGKILL mid-training: the next run with the same inputs resumes it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tasks.orphans import process_start, stat_fields
from tests.data.builders import npz_bytes

CLI = [sys.executable, "-m", "flows.cli"]


def _environment(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MNIST_", "PREFECT_"))},
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def _api_servers(parent: int) -> list[int]:
    """Prefect's ephemeral API servers started by process `parent`."""
    found = []
    for folder in Path("/proc").glob("[0-9]*"):
        fields = stat_fields(int(folder.name))
        try:
            command = (folder / "cmdline").read_bytes()
        except OSError:
            continue
        if fields and int(fields[1]) == parent and b"uvicorn" in command and b"prefect.server" in command:
            found.append(int(folder.name))
    return found


def _epochs_done(store: Path) -> int:
    states = list((store / "checkpoints").glob("*/state.json"))
    return int(json.loads(states[0].read_text())["epochs_done"]) if states else 0


@pytest.mark.slow
def test_a_killed_run_is_resumed_by_the_next_run_with_the_same_inputs(
    tmp_path: Path, mnist: dict[str, np.ndarray]
) -> None:
    store = tmp_path / "store"
    (store / "incoming").mkdir(parents=True)
    (store / "incoming" / "digits.npz").write_bytes(npz_bytes(x=mnist["x_train"][:2000], y=mnist["y_train"][:2000]))
    args = [*CLI, "run", "--store", str(store), "--profile", "nightly", "--epochs", "30"]

    # `kill -9` of the run alone: Prefect's ephemeral API server, which it started, must not outlive it
    first = subprocess.Popen(args, cwd=tmp_path, env=_environment(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    servers: list[int] = []
    try:
        while _epochs_done(store) < 2:
            assert first.poll() is None, f"the run ended before it could be killed:\n{first.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        servers = _api_servers(first.pid)
        first.kill()
        first.communicate(timeout=60)
        deadline = time.monotonic() + 30
        while any(process_start(server) is not None for server in servers) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the run's process group
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    assert len(servers) == 1, "the run had no ephemeral Prefect API server of its own"
    assert process_start(servers[0]) is None, "the ephemeral API server outlived the killed run by 30 s"
    done = _epochs_done(store)
    assert 2 <= done < 30 and not list((store / "models").glob("*/model.keras"))

    second = subprocess.run(args, cwd=tmp_path, env=_environment(tmp_path), capture_output=True, text=True,
                            timeout=600, check=False)  # fmt: skip
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert f"resuming training after epoch {done} from the checkpoint" in output
    (metrics_file,) = store.glob("models/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["config"]["resumed_after_epoch"] == done
    assert len(metrics["history"]["val_loss"]) > done  # the earlier epochs' history is carried over
    assert not list((store / "checkpoints").glob("*/*"))  # cleared once the model is stored
