"""The whole retrain flow on a real MNIST slice, against a local folder and a real S3 endpoint."""

from __future__ import annotations

import gzip
import io
import json
import struct
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from flows.retrain import retrain
from flows.rollback import RollbackConfig, rollback
from tasks.config import RunConfig
from tasks.publish import PublishResult
from tasks.sample import digits_to_csv

METRICS_KEYS = {
    "version", "created_at", "accuracy", "loss", "per_class", "confusion_matrix", "n_train", "n_holdout",
    "train_seconds", "config", "data", "versions", "git_commit",
}  # fmt: skip
VERDICT_KEYS = {"promoted", "reasons", "champion_before", "gate"}
CHAMPION_KEYS = {"version", "accuracy", "promoted_at", "reason", "run_id"}


def read_object(store_uri: str, key: str) -> bytes:
    """Read what the flow published with the backend's own client (boto3 or the file system), not ours."""
    if store_uri.startswith("s3://"):
        import boto3

        parsed = urlparse(store_uri)
        response = boto3.client("s3").get_object(Bucket=parsed.netloc, Key=f"{parsed.path.strip('/')}/{key}")
        return bytes(response["Body"].read())
    return (Path(store_uri) / key).read_bytes()


def write_object(store_uri: str, key: str, data: bytes) -> None:
    """Upload as a producer would, with boto3 or plain file writes."""
    if store_uri.startswith("s3://"):
        import boto3

        parsed = urlparse(store_uri)
        boto3.client("s3").put_object(Bucket=parsed.netloc, Key=f"{parsed.path.strip('/')}/{key}", Body=data)
        return
    path = Path(store_uri) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def land_real_slice(store_uri: str, mnist: dict[str, np.ndarray]) -> None:
    x, y = mnist["x_train"], mnist["y_train"]
    write_object(store_uri, "incoming/batch-1/digits.csv", digits_to_csv(x[:1200], y[:1200]))
    images = struct.pack(">IIII", 2051, 800, 28, 28) + x[1200:2000].tobytes()
    labels = struct.pack(">II", 2049, 800) + y[1200:2000].tobytes()
    write_object(store_uri, "incoming/batch-2/train-images-idx3-ubyte.gz", gzip.compress(images))
    write_object(store_uri, "incoming/batch-2/train-labels-idx1-ubyte.gz", gzip.compress(labels))
    buffer = io.BytesIO()
    np.savez(buffer, x=mnist["x_test"][:500], y=mnist["y_test"][:500])
    write_object(store_uri, "incoming/holdout/official-test-slice.npz", buffer.getvalue())
    write_object(store_uri, "incoming/batch-3/broken.csv", b"label,pixel0\n7,not-a-number\n")


def test_retrain_flow_publishes_the_contract_layout(store_uri: str, mnist: dict[str, np.ndarray]) -> None:
    land_real_slice(store_uri, mnist)

    result = retrain(RunConfig(store=store_uri, seed=3, gate_floor=0.9))  # 1,800 digits: the floor is for real data

    assert isinstance(result, PublishResult) and result.promoted
    version = result.version
    metrics = json.loads(read_object(store_uri, f"models/{version}/metrics.json"))
    assert set(metrics) >= METRICS_KEYS
    assert metrics["n_train"] + metrics["n_validation"] == 2000 and metrics["n_holdout"] == 500
    assert 0.8 < metrics["accuracy"] <= 1.0
    assert len(metrics["per_class"]) == 10 and len(metrics["confusion_matrix"]) == 10
    assert sum(map(sum, metrics["confusion_matrix"])) == 500
    assert set(metrics["versions"]) >= {"python", "tensorflow", "keras", "prefect"}
    assert metrics["config"]["seed"] == 3 and metrics["config"]["profile"] == "fast"
    assert metrics["config"]["precision"] == "auto"
    assert metrics["config"]["trained_in"] in {"float32", "mixed_bfloat16"}  # what "auto" chose on this machine
    assert 1 <= metrics["best_epoch"] <= len(metrics["history"]["loss"])
    verdict = json.loads(read_object(store_uri, f"models/{version}/verdict.json"))
    assert set(verdict) >= VERDICT_KEYS and verdict["promoted"] and verdict["champion_before"] is None
    champion = json.loads(read_object(store_uri, "models/champion.json"))
    assert set(champion) >= CHAMPION_KEYS and champion["version"] == version
    history = read_object(store_uri, "models/history.jsonl").decode().splitlines()
    assert [json.loads(line)["to"] for line in history] == [version]
    report = read_object(store_uri, f"models/{version}/report.html").decode()
    assert "data:image/png;base64," in report and "http://" not in report.split("<body", 1)[1]
    for chart in ("training_curves.png", "confusion_matrix.png"):
        assert read_object(store_uri, f"models/{version}/{chart}").startswith(b"\x89PNG")
    assert len(read_object(store_uri, f"models/{version}/model.keras")) > 10_000
    assert read_object(store_uri, f"models/{version}/model.tflite")[4:8] == b"TFL3"
    assert len(read_object(store_uri, f"models/{version}/saved_model/saved_model.pb")) > 1000
    assert version in read_object(store_uri, "reports/index.html").decode()
    reason = json.loads(read_object(store_uri, "quarantine/batch-3/broken.csv.reason.json"))
    assert reason["source"] == "incoming/batch-3/broken.csv" and reason["reason"]
    manifest = json.loads(read_object(store_uri, "datasets/manifest.json"))
    outcomes = {e["key"]: e["outcome"] for e in manifest["entries"]}
    assert outcomes["incoming/batch-3/broken.csv"] == "quarantined"
    assert sum(e["rows_accepted"] for e in manifest["entries"] if not e.get("part_of")) == 2500

    again = retrain(RunConfig(store=store_uri, epochs=1))
    assert isinstance(again, str) and f"no new data since champion {version}" in again

    forced = retrain(RunConfig(store=store_uri, epochs=1, force=True, force_promote=True, reason="<b>drill</b>"))
    assert isinstance(forced, PublishResult) and forced.version > version
    champion = json.loads(read_object(store_uri, "models/champion.json"))
    assert champion["version"] == forced.version and "drill" in champion["reason"]
    history = [json.loads(line) for line in read_object(store_uri, "models/history.jsonl").decode().splitlines()]
    assert [(h["from"], h["to"]) for h in history] == [(None, version), (version, forced.version)]
    index = read_object(store_uri, "reports/index.html").decode()
    assert index.index(forced.version) < index.index(version)  # newest first
    forced_metrics = json.loads(read_object(store_uri, f"models/{forced.version}/metrics.json"))
    assert forced_metrics["champion"]["version"] == version  # both judged on the same holdout in the same run
    gate = json.loads(read_object(store_uri, f"models/{forced.version}/verdict.json"))["gate"]
    assert {r["name"] for r in gate["rules"]} == {"floor", "no-regression", "per-class-recall", "mcnemar", "robustness"}

    pointer = rollback(RollbackConfig(to=version, reason="forced model was a drill", store=store_uri))
    assert pointer["version"] == version
    history = [json.loads(line) for line in read_object(store_uri, "models/history.jsonl").decode().splitlines()]
    assert (history[-1]["action"], history[-1]["from"], history[-1]["to"]) == ("rollback", forced.version, version)
    refused = rollback(RollbackConfig(to="no-such-version", reason="x", store=store_uri), return_state=True)
    assert refused.is_failed() and "unknown version 'no-such-version'" in (refused.message or "")

    warm = retrain(RunConfig(store=store_uri, epochs=1, force=True, warm_start=True))
    assert isinstance(warm, PublishResult)
    warm_config = json.loads(read_object(store_uri, f"models/{warm.version}/metrics.json"))["config"]
    assert warm_config["warm_start"] == {"requested": True, "from": version, "note": "weights loaded"}


def test_a_run_with_nothing_valid_fails_with_a_clear_reason(tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    write_object(store_uri, "incoming/only-bad.csv", b"hello,world\n")
    state = retrain(RunConfig(store=store_uri), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)  # a Failed state returned by the flow, not an exception
    assert error is None and "nothing valid to train on" in (state.message or "")
    assert (tmp_path / "store" / "quarantine" / "only-bad.csv").read_bytes() == b"hello,world\n"


def test_bad_parameters_are_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match="needs --reason"):
        RunConfig(force_promote=True)
    with pytest.raises(ValueError):
        RunConfig(epochs=0)
