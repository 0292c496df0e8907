"""The command line as a user runs it: the quickstart on the shipped sample, reports, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import S3Endpoint

CLI = [sys.executable, "-m", "flows.cli"]


def run_cli(args: list[str], tmp_path: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MNIST_", "PREFECT_"))},
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **env,
    }
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=environment, cwd=tmp_path, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnist-pipeline: error: ")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr[-2000:]


def draw_pngs(folder: Path, images: np.ndarray) -> list[Path]:
    """Real digits as people would send them: large, dark ink on white paper, PNG and JPEG."""
    from PIL import Image

    paths = []
    for i, image in enumerate(images):
        picture = Image.fromarray(255 - image).resize((140, 140), Image.Resampling.BICUBIC)
        path = folder / (f"digit {i}.png" if i % 2 else f"digit-{i}.jpg")
        picture.convert("RGB").save(path)
        paths.append(path)
    return paths


def test_quickstart_on_the_shipped_sample_runs_once_then_skips(tmp_path: Path, mnist: dict) -> None:
    """`make run` runs exactly `mnist-pipeline run --sample` on the embedded default store (here MNIST_STORE)."""
    store = tmp_path / "store"

    first = run_cli(["run", "--sample"], tmp_path, MNIST_STORE=str(store))

    assert first.returncode == 0, first.stderr[-3000:]
    assert "seeded the landing zone" in first.stderr
    champion = json.loads((store / "models" / "champion.json").read_text())
    assert f"champion: {champion['version']}" in first.stdout
    assert str(store / "models" / champion["version"] / "report.html") in first.stdout
    assert champion["accuracy"] > 0.9  # 4,000 real digits are plenty for a small CNN
    assert sorted(p.name for p in (store / "incoming").rglob("*.csv")) == [
        "mnist-sample-holdout.csv",
        "mnist-sample-train.csv",
    ]
    manifest_before = (store / "datasets" / "manifest.json").read_bytes()

    second = run_cli(["run", "--sample"], tmp_path, MNIST_STORE=str(store))

    assert second.returncode == 0, second.stderr[-3000:]
    assert "landing zone not empty: sample not seeded" in second.stderr
    assert f"no new data since champion {champion['version']}" in second.stdout
    assert (store / "datasets" / "manifest.json").read_bytes() == manifest_before
    assert len(list((store / "models").glob("*/model.keras"))) == 1

    out = tmp_path / "fetched.html"
    fetched = run_cli(["report", "--store", str(store), "--out", str(out)], tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == (store / "models" / champion["version"] / "report.html").read_bytes()
    url = run_cli(["report", "--store", str(store), "--url"], tmp_path)
    assert url.returncode == 0 and url.stdout.strip().startswith("file://")

    images, labels = mnist["x_test"][:20], mnist["y_test"][:20]
    pictures = draw_pngs(tmp_path, images)
    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(",".join(map(str, image.ravel())) for image in images[:5]) + "\n")
    predicted = run_cli(["predict", "--store", str(store), *map(str, pictures), str(rows)], tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = [line.split("\t") for line in predicted.stdout.strip().splitlines()]
    assert [name for name, _, _ in lines] == [*map(str, pictures), *(f"{rows}:row {i}" for i in range(1, 6))]
    assert all(0.0 <= float(confidence) <= 1.0 for _, _, confidence in lines)
    drawn_right = sum(int(label) == truth for (_, label, _), truth in zip(lines[:20], labels, strict=True))
    assert drawn_right >= 17, lines
    csv_right = sum(int(label) == truth for (_, label, _), truth in zip(lines[20:], labels[:5], strict=True))
    assert csv_right >= 4

    unknown = run_cli(["rollback", "--to", "nope", "--reason", "test", "--store", str(store)], tmp_path)
    assert_one_line_error(unknown, "unknown version 'nope'")
    bad_file = run_cli(["predict", "--store", str(store), str(tmp_path / "fetched.html")], tmp_path)
    assert bad_file.returncode != 0 and "unsupported file type .html" in bad_file.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--store", "gs://bucket"], "unsupported store URI"),
        (["run", "--epochs", "0"], "invalid epochs"),
        (["run", "--force-promote"], "needs --reason"),
        (["report", "--store", "{tmp}/empty"], "no champion"),
        (["report", "--store", "{tmp}/empty", "--version", "nope"], "has no report"),
    ],
)
def test_expected_failures_are_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run_cli([a.replace("{tmp}", str(tmp_path)) for a in args], tmp_path, timeout=120)
    assert_one_line_error(result, fragment)


def test_a_store_with_nothing_valid_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "store" / "incoming").mkdir(parents=True)
    (tmp_path / "store" / "incoming" / "junk.csv").write_bytes(b"\x00\x01binary")
    result = run_cli(["run", "--store", str(tmp_path / "store")], tmp_path, timeout=300)
    assert_one_line_error(result, "nothing valid to train on")
    assert (tmp_path / "store" / "quarantine" / "junk.csv.reason.json").is_file()


def test_s3_failures_are_one_line(tmp_path: Path, s3_endpoint: S3Endpoint) -> None:
    missing = run_cli(["run", "--store", "s3://no-such-bucket"], tmp_path, timeout=120, **s3_endpoint.env())
    assert_one_line_error(missing, "does not exist")
    unreachable_env = {**s3_endpoint.env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    unreachable = run_cli(["run", "--store", "s3://bucket/x"], tmp_path, timeout=120, **unreachable_env)
    assert_one_line_error(unreachable, "unreachable")


def test_prune_lists_then_deletes_abandoned_checkpoints(tmp_path: Path) -> None:
    store = tmp_path / "store"
    folder = store / "checkpoints" / "a1b2"
    folder.mkdir(parents=True)
    (folder / "epoch-0003.keras").write_bytes(b"model")
    (folder / "state.json").write_text(json.dumps({"epochs_done": 3, "saved_at": "2026-01-01T00:00:00+00:00"}))

    dry = run_cli(["prune", "--store", str(store), "--dry-run"], tmp_path, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "would delete\tcheckpoints/a1b2/\tabandoned training, last saved 2026-01-01" in dry.stdout
    assert (folder / "state.json").exists()

    done = run_cli(["prune", "--store", str(store)], tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 abandoned checkpoint(s), 2 file(s)" in done.stdout
    assert not list(folder.glob("*"))
