"""Crash resume: a training process killed with SIGKILL resumes from its last checkpoint in the store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tasks.checkpoint import STATE_FILE, StoreCheckpoints, TrainingState, checkpoint_prefix
from tasks.store import open_store
from tests.data.builders import npz_bytes

ROOT = Path(__file__).resolve().parents[2]
TINY_EPOCHS = 8

# The training process: a tiny model on the store's data, paced so the test can kill it between epochs.
TRAINER = f"""
import json, sys, time
import keras
from tasks import model, pipeline

model.PROFILES["tiny"] = model.TrainProfile(
    widths=(4,), convs_per_stage=1, batch_norm=False, dense_units=0, dropout=0.1, epochs={TINY_EPOCHS}, min_steps=0,
    batch_size=64, peak_learning_rate=3e-3, warmup_fraction=0.2, label_smoothing=0.0, shift_pixels=0,
)
store_uri, pause = sys.argv[1], float(sys.argv[2])

class Pace(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print(f"epoch-begin {{epoch + 1}}", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(pause)

say = lambda message: print(message, flush=True)
pipeline.ingest_inputs(store_uri, "run-" + sys.argv[2], 10, log=say)
spec = pipeline.plan_dataset(store_uri)
record = pipeline.train(store_uri, spec, "v-resume", "tiny", None, 7, callbacks=[Pace()], log=say)
print("RESULT " + json.dumps({{"history": record.history, "config": record.config}}), flush=True)
"""


def _trainer(store_uri: str, pause: float) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", TRAINER, store_uri, str(pause)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _checkpoint_state(store_uri: str) -> dict[str, object] | None:
    store = open_store(store_uri)
    states = [info.key for info in store.list("checkpoints/") if info.key.endswith("/" + STATE_FILE)]
    return json.loads(store.get(states[0])) if states else None


def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint(
    store_uri: str, mnist: dict[str, np.ndarray]
) -> None:
    store = open_store(store_uri)
    store.put("incoming/batch.npz", npz_bytes(x=mnist["x_train"][:1500], y=mnist["y_train"][:1500]))

    first = _trainer(store_uri, pause=2.0)
    deadline = time.monotonic() + 180
    try:
        while (state := _checkpoint_state(store_uri)) is None or int(state["epochs_done"]) < 2:  # type: ignore[call-overload]
            assert first.poll() is None, f"trainer ended before it could be killed:\n{first.communicate()[0]}"
            assert time.monotonic() < deadline, "no checkpoint after 180 s"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first_output = first.communicate(timeout=60)[0]
    assert first.returncode == -signal.SIGKILL
    assert "RESULT" not in first_output
    killed_state = _checkpoint_state(store_uri)
    assert killed_state is not None
    done = int(killed_state["epochs_done"])  # type: ignore[call-overload]
    assert 2 <= done < TINY_EPOCHS

    second = _trainer(store_uri, pause=0.0)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    assert f"resuming training after epoch {done} from the checkpoint" in output
    began = [int(line.split()[1]) for line in output.splitlines() if line.startswith("epoch-begin")]
    assert began and began[0] == done + 1, output  # no epoch trained twice
    result = json.loads(output.split("RESULT ", 1)[1])
    history = result["history"]
    assert history["val_loss"][:done] == killed_state["history"]["val_loss"]  # type: ignore[index]
    assert len(history["val_loss"]) == done + len(began)
    assert result["config"]["resumed_after_epoch"] == done
    assert store.exists("models/v-resume/model.keras")
    assert store.list("checkpoints/") == []  # cleared once the model itself is stored


def test_an_unfinished_checkpoint_is_ignored_and_training_starts_fresh(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    checkpoints = StoreCheckpoints(store, "checkpoints/abc/")
    assert checkpoints.load() is None
    # state.json names a model file that never arrived (killed while writing): start over, do not crash
    store.put("checkpoints/abc/state.json", json.dumps({"epochs_done": 3, "model": "epoch-0003.keras"}).encode())
    assert checkpoints.load() is None


def test_checkpoint_folders_are_named_by_what_decides_the_training() -> None:
    base = {"dataset": "d1", "profile": "fast", "epochs": None, "seed": 42}
    assert checkpoint_prefix(base) == checkpoint_prefix(dict(reversed(base.items())))
    assert checkpoint_prefix(base) != checkpoint_prefix({**base, "dataset": "d2"})
    assert checkpoint_prefix(base) != checkpoint_prefix({**base, "seed": 43})
    assert checkpoint_prefix(base).startswith("checkpoints/")


def test_saving_keeps_only_the_latest_epoch_and_best_weights(tmp_path: Path) -> None:
    from tasks.model import build_model, get_profile

    store = open_store(str(tmp_path))
    checkpoints = StoreCheckpoints(store, "checkpoints/abc/")
    model = build_model(get_profile("fast"))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(np.zeros((4, 28, 28), np.uint8), np.eye(10)[[0, 1, 2, 3]], verbose=0)  # the optimiser has state
    for epoch in (1, 2):
        state = TrainingState(epoch, {"val_loss": [0.5] * epoch}, 0.5, 0, epoch - 1, model.get_weights())
        checkpoints.save(model, state)
    keys = sorted(info.key.removeprefix("checkpoints/abc/") for info in store.list("checkpoints/"))
    assert keys == ["best-0001.npz", "epoch-0002.keras", "state.json"]
    resumed = checkpoints.load()
    assert resumed is not None and resumed.state.epochs_done == 2 and resumed.state.wait == 1
    assert all(np.array_equal(a, b) for a, b in zip(resumed.state.best_weights or [], model.get_weights(), strict=True))
