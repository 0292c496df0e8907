"""`make bench --quick`: the benchmark runs end to end on a real MNIST slice and writes its full record."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_MNIST

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = ("seed-like", "keras-io convnet", "fast", "nightly")


def test_results_go_where_asked_else_under_bench_results_and_quick_runs_never_over_a_full_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # the benchmark is a script beside its contenders module
    train_bench = importlib.import_module("train_bench")

    assert train_bench.results_folder(tmp_path, quick=True) == tmp_path
    assert train_bench.results_folder(None, quick=False) == ROOT / "bench" / "results"
    assert train_bench.results_folder(None, quick=True) == ROOT / "bench" / "results" / "quick"


@pytest.mark.slow
def test_quick_benchmark_writes_every_figure_the_issue_asks_for(tmp_path: Path) -> None:
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST not available: {SHARED_MNIST} is absent (../shared is only in the dev checkout)")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MNIST_", "PREFECT_"))},
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    result = subprocess.run(
        [sys.executable, "bench/train_bench.py", "--quick", "--nightly-seeds", "2", "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=900, env=environment, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((tmp_path / "latest.json").read_text())
    assert record["mode"] == "quick"
    assert len(list(tmp_path.glob("*-quick.json"))) == 1  # the dated copy
    rows = record["contenders"]
    assert set(rows) == set(CONTENDERS)
    for name in CONTENDERS:
        row = rows[name]
        assert row["fit_seconds"] > 0 and row["images_per_second"] > 0, name
        assert 0.0 <= row["test_accuracy"] <= 1.0, name
        assert {"seconds_to_98", "seconds_to_99", "fit_time_ratio", "time_to_98_vs_seed_fit"} <= set(row)
        assert len(row["curve"]) == row["epochs_run"] == 1
    assert rows["seed-like"]["fit_time_ratio"] == 1.0
    for name in ("seed-like", "keras-io convnet", "fast"):  # one epoch on 5k real digits learns something
        assert rows[name]["test_accuracy"] > 0.5, name
    assert [s["seed"] for s in rows["nightly"]["per_seed"]] == [42, 43]
    flow = record["flow"]
    assert flow["flow_seconds"] > flow["fit_seconds"] > 0
    assert flow["flow_overhead_seconds"] == pytest.approx(flow["flow_seconds"] - flow["fit_seconds"], abs=0.05)
    assert flow["ingest_seconds"] > 0 and flow["peak_rss_mb"] > 0
    assert flow["inference"]["tflite_images_per_second"] > 0
    assert record["machine"]["cpus"] >= 1 and record["machine"]["tensorflow"]
    assert record["machine"]["auto_precision"] in {"float32", "mixed_bfloat16"}
    assert "contender" in result.stdout and "nightly" in result.stdout  # the printed table
