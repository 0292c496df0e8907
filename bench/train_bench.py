"""Benchmark: our profiles side by side with the seed-like net and the keras-io convnet, plus the whole flow.

On the full MNIST from ../shared/data/mnist (60k train, official 10k test), in one process on this machine:

1. the retrain flow once (fast profile) on a fresh local store where the IDX files were landed as a producer
   would: flow seconds, fit seconds, the flow's overhead, ingest seconds, peak RSS, inference rates;
2. each contender trained on the same 54k/6k split: fit seconds, test accuracy, seconds to 98% and 99%,
   images/s during fit, and ratios against the seed-like net.

Prints a table and writes bench/results/latest.json and a dated copy.

    make bench                             # everything, nightly with one seed
    make bench ARGS="--nightly-seeds 3"    # the nightly profile's three-seed mean
    make bench ARGS="--quick"              # 5k/1k slice, 1 epoch each: a smoke check
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
from typing import Any

import contenders  # bench/ is the script's folder
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "mnist"
RESULTS = ROOT / "bench" / "results"
QUICK_SLICE = (5000, 1000)


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


def run_flow(quick: bool, seed: int) -> dict[str, Any]:
    """The retrain flow once on a fresh store, started as `mnist-pipeline run` starts it.

    The CLI brings up the Prefect API while TensorFlow imports on another thread, before the flow; that start-up is
    reported apart (`startup_seconds`, `prefect_api_start_seconds`) and the flow's wall time begins after it.
    """
    from flows.retrain import retrain
    from flows.startup import start_api_and_tensorflow
    from tasks.config import RunConfig

    startup = start_api_and_tensorflow()
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as folder:
        store = Path(folder) / "store"
        if quick:
            land_slice(store, *QUICK_SLICE)
        else:
            land_full_mnist(store)
        config = RunConfig(store=str(store), profile="fast", seed=seed, epochs=1 if quick else None)
        started = time.perf_counter()
        result = retrain(config)
        flow_seconds = time.perf_counter() - started
        version_folder = store / "models" / result.version  # type: ignore[union-attr]
        metrics = json.loads((version_folder / "metrics.json").read_text())
        with np.load(SHARED / "mnist.npz", allow_pickle=False) as data:
            inference = inference_figures(version_folder, data["x_test"][: QUICK_SLICE[1] if quick else None])
    fit = metrics["train_seconds"]
    return {
        "profile": "fast",
        "test_accuracy": metrics["accuracy"],
        "fit_seconds": fit,
        "flow_seconds": round(flow_seconds, 2),
        "flow_overhead_seconds": round(flow_seconds - fit, 2),
        "prefect_api_start_seconds": startup["prefect_api"],
        "startup_seconds": startup["ready"],  # API start and TensorFlow import, side by side
        "cli_seconds": round(startup["ready"] + flow_seconds, 2),
        "ingest_seconds": metrics["timings"].get("ingest"),
        "timings": metrics["timings"],
        "peak_rss_mb": _peak_rss_mb(),
        "inference": inference,
        "versions": metrics["versions"],
    }


def run_contenders(quick: bool, seed: int, nightly_seeds: int) -> dict[str, contenders.Result]:
    with np.load(SHARED / "mnist.npz", allow_pickle=False) as npz:
        data = {name: npz[name] for name in ("x_train", "y_train", "x_test", "y_test")}
    if quick:
        data = {k: v[: QUICK_SLICE[0] if k.endswith("train") else QUICK_SLICE[1]] for k, v in data.items()}
    results = {
        "seed-like": contenders.run_reference(
            "seed-like", data, seed, contenders.SEED_LIKE_EPOCHS, contenders.SEED_LIKE_BATCH, quick
        ),
        "keras-io convnet": contenders.run_reference(
            "keras-io convnet", data, seed, contenders.KERAS_IO_EPOCHS, contenders.KERAS_IO_BATCH, quick
        ),
        "fast": contenders.run_profile("fast", data, seed, quick),
    }
    for name, result in results.items():
        print(f"  {name}: {result.test_accuracy:.4f} in {result.fit_seconds:.1f} s", flush=True)
    nightly = []
    for offset in range(nightly_seeds):
        nightly.append(contenders.run_profile("nightly", data, seed + offset, quick))
        print(f"  nightly seed {seed + offset}: {nightly[-1].test_accuracy:.4f} in {nightly[-1].fit_seconds:.1f} s")
    if nightly:
        results["nightly"] = contenders.mean_of(nightly)
    return results


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ratios(result: contenders.Result, reference: contenders.Result) -> dict[str, float | None]:
    """Against the seed-like net: fit time, and time to the seed's 98% over its whole 10-epoch fit."""
    to_98 = result.seconds_to(0.98)
    return {
        "fit_time_ratio": round(result.fit_seconds / reference.fit_seconds, 3),
        "time_to_98_vs_seed_fit": round(to_98 / reference.fit_seconds, 3) if to_98 is not None else None,
        "accuracy_gain_points": round((result.test_accuracy - reference.test_accuracy) * 100, 2),
    }


def print_table(flow: dict[str, Any], rows: dict[str, dict[str, Any]]) -> None:
    header = f"{'contender':<18}{'test acc':>9}{'fit s':>8}{'s→98%':>8}{'s→99%':>8}{'img/s':>9}"
    print(header + f"{'fit ×seed':>10}{'→98% ×seed fit':>16}")
    for name, row in rows.items():
        cells = [f"{row['test_accuracy']:>9.4f}", f"{row['fit_seconds']:>8.1f}"]
        cells += [f"{row[k]:>8.1f}" if row[k] is not None else f"{'–':>8}" for k in ("seconds_to_98", "seconds_to_99")]
        cells += [f"{row['images_per_second']:>9.0f}", f"{row['fit_time_ratio']:>10.2f}"]
        to_98 = row["time_to_98_vs_seed_fit"]
        cells.append(f"{to_98:>16.2f}" if to_98 is not None else f"{'–':>16}")
        print(f"{name:<18}" + "".join(cells))
    for seed_row in rows.get("nightly", {}).get("per_seed", []):
        print(f"  nightly seed {seed_row['seed']}: {seed_row['test_accuracy']:.4f} in {seed_row['fit_seconds']:.1f} s")
    print(
        f"flow (fast): {flow['flow_seconds']:.1f} s, fit {flow['fit_seconds']:.1f} s, overhead "
        f"{flow['flow_overhead_seconds']:.1f} s, ingest {flow['ingest_seconds']} s, Prefect API start "
        f"{flow['prefect_api_start_seconds']:.1f} s and TensorFlow import alongside it: start-up "
        f"{flow['startup_seconds']:.1f} s (outside the flow), peak RSS {flow['peak_rss_mb']:.0f} MB"
    )
    print("inference over the test set: " + ", ".join(f"{k} {v}" for k, v in flow["inference"].items()))


def results_folder(chosen: Path | None, quick: bool) -> Path:
    """Where latest.json goes: the folder asked for, else bench/results (a quick run: bench/results/quick)."""
    if chosen is not None:
        return chosen
    return RESULTS / "quick" if quick else RESULTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--nightly-seeds", type=int, default=1, help="train the nightly profile with N seeds (0: skip it)"
    )
    parser.add_argument("--quick", action="store_true", help="5k train / 1k test, 1 epoch each (smoke check)")
    parser.add_argument(
        "--results", type=Path, help="folder for latest.json and the dated copy (bench/results, --quick: its quick/)"
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"bench: {SHARED} is absent: the benchmark needs the real MNIST files from ../shared", file=sys.stderr)
        return 2
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.cli import prepare_environment
    from tasks.model import choose_precision, this_hardware

    prepare_environment()
    flow = run_flow(args.quick, args.seed)
    print(f"flow done: {flow['flow_seconds']:.1f} s", flush=True)
    results = run_contenders(args.quick, args.seed, args.nightly_seeds)
    reference = results["seed-like"]
    rows = {name: result.record() | ratios(result, reference) for name, result in results.items()}
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "seed": args.seed,
        "contenders": rows,
        "flow": flow,
        "peak_rss_mb": _peak_rss_mb(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "cpu": this_hardware().cpu_model or platform.processor(),
            "auto_precision": choose_precision(this_hardware()),  # what the fast profile trained in
            **flow["versions"],
        },
    }
    folder = results_folder(args.results, args.quick)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1)
    (folder / "latest.json").write_text(text)
    (folder / f"{record['at'].replace(':', '')}-{record['mode']}.json").write_text(text)
    print_table(flow, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
