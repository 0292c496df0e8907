"""Benchmark: the retrain flow on the full MNIST (60k train, official 10k test as the holdout).

Lands the IDX files from ../shared/data/mnist in a fresh local store exactly as a producer would, runs the
retrain flow once, and prints test accuracy, fit seconds and whole-flow seconds (plus the flow's overhead).
Writes bench/results/latest.json and a dated copy.

    make bench                       # default profile, full data
    make bench ARGS="--profile nightly"
    make bench ARGS="--quick"        # 5k/1k slice, 1 epoch: a smoke check
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import struct
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "mnist"
RESULTS = ROOT / "bench" / "results"


def land_full_mnist(store: Path) -> None:
    (store / "incoming" / "mnist").mkdir(parents=True)
    (store / "incoming" / "holdout").mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copyfile(SHARED / name, store / "incoming" / "mnist" / name)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(SHARED / name, store / "incoming" / "holdout" / name)


def land_slice(store: Path, n_train: int, n_test: int) -> None:
    with np.load(SHARED / "mnist.npz", allow_pickle=False) as data:
        parts = {"mnist": (data["x_train"][:n_train], data["y_train"][:n_train]),
                 "holdout": (data["x_test"][:n_test], data["y_test"][:n_test])}  # fmt: skip
    for folder, (images, labels) in parts.items():
        target = store / "incoming" / folder
        target.mkdir(parents=True)
        header = struct.pack(">IIII", 2051, len(images), 28, 28)
        (target / "x-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        (target / "x-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">II", 2049, len(labels)) + labels.tobytes())
        )


def inference_figures(version_folder: Path, images: np.ndarray) -> dict[str, float]:
    """Batched images/s of Keras predict and of the TFLite export over `images`, and single-image latency."""
    import keras

    from tasks.exports import tflite_predict
    from tasks.model import predict_probabilities

    model = keras.saving.load_model(version_folder / "model.keras", safe_mode=True)
    tflite = (version_folder / "model.tflite").read_bytes()
    predict_probabilities(model, images[:1024])  # warm up: graph tracing is not inference
    tflite_predict(tflite, images[:1024])

    def rate(fn: object) -> float:
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        return len(images) / (time.perf_counter() - started)

    def latency_ms(fn: object) -> float:
        samples = []
        for i in range(50):
            started = time.perf_counter()
            fn(images[i : i + 1])  # type: ignore[operator]
            samples.append(time.perf_counter() - started)
        return float(np.median(samples) * 1000)

    return {
        "keras_images_per_second": round(rate(lambda: predict_probabilities(model, images)), 0),
        "tflite_images_per_second": round(rate(lambda: tflite_predict(tflite, images)), 0),
        "keras_single_image_ms": round(latency_ms(lambda x: model(x, training=False)), 2),
        "tflite_single_image_ms": round(latency_ms(lambda x: tflite_predict(tflite, x)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="fast", choices=["fast", "nightly"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="5k train / 1k test, 1 epoch (smoke check)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"bench: {SHARED} is absent: the benchmark needs the real MNIST files from ../shared", file=sys.stderr)
        return 2
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.cli import prepare_environment
    from flows.retrain import retrain
    from tasks.config import RunConfig

    prepare_environment()
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as folder:
        store = Path(folder) / "store"
        if args.quick:
            land_slice(store, 5000, 1000)
        else:
            land_full_mnist(store)
        config = RunConfig(store=str(store), profile=args.profile, seed=args.seed, epochs=1 if args.quick else None)
        started = time.perf_counter()
        result = retrain(config)
        flow_seconds = time.perf_counter() - started
        version_folder = store / "models" / result.version  # type: ignore[union-attr]
        metrics = json.loads((version_folder / "metrics.json").read_text())
        with np.load(SHARED / "mnist.npz", allow_pickle=False) as data:
            inference = inference_figures(version_folder, data["x_test"])
    fit = metrics["train_seconds"]
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "profile": args.profile,
        "seed": args.seed,
        "n_train": metrics["n_train"],
        "n_validation": metrics["n_validation"],
        "n_holdout": metrics["n_holdout"],
        "epochs_run": len(metrics["history"].get("loss", [])),
        "best_epoch": metrics["best_epoch"],
        "test_accuracy": metrics["accuracy"],
        "fit_seconds": fit,
        "flow_seconds": round(flow_seconds, 2),
        "flow_overhead_seconds": round(flow_seconds - fit, 2),
        "images_per_second": round(metrics["n_train"] * len(metrics["history"].get("loss", [])) / fit, 1),
        "timings": metrics["timings"],
        "inference": inference,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **metrics["versions"]},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1)
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"{record['at'].replace(':', '')}-{record['mode']}-{args.profile}.json").write_text(text)
    print(
        f"{'profile':<10}{'mode':<7}{'test acc':>9}{'fit s':>8}{'flow s':>8}{'overhead s':>11}{'img/s':>9}{'RSS MB':>8}"
    )
    row = [record["test_accuracy"], fit, flow_seconds, record["flow_overhead_seconds"]]
    row += [record["images_per_second"], record["peak_rss_mb"]]
    print(f"{args.profile:<10}{record['mode']:<7}{row[0]:>9.4f}{row[1]:>8.1f}{row[2]:>8.1f}{row[3]:>11.1f}", end="")
    print(f"{row[4]:>9.0f}{row[5]:>8.0f}")
    print("inference over the official 10k: " + ", ".join(f"{k} {v}" for k, v in inference.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
