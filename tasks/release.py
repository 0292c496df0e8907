"""The publish step: metrics, verdict and report stored and verified, then the champion pointer, then the index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.assess import EvaluationRecord, load_predictions
from tasks.config import RunConfig
from tasks.dataset import DatasetSpec, load_dataset
from tasks.gate import judge, reject_for_race
from tasks.ingest import IngestSummary
from tasks.lineage import git_commit, package_versions
from tasks.manifest import load_manifest
from tasks.pipeline import TrainRecord
from tasks.publish import (
    INDEX_KEY,
    LATEST_KEY,
    PublishResult,
    move_champion,
    put_verified,
    read_champion,
    record_run,
    to_json_bytes,
    version_key,
)
from tasks.report import render_index, render_report
from tasks.store import PreconditionFailed, Store, open_store


@dataclass(frozen=True)
class RunInfo:
    """Who and when: identifies the run in every file it leaves."""

    run_id: str
    version: str
    created_at: str
    config: dict[str, Any]


def build_metrics(
    run: RunInfo,
    store: Store,
    summary: IngestSummary,
    trained: TrainRecord,
    evaluated: EvaluationRecord,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The contract's `metrics.json`, plus the figures behind every chart of the report."""
    manifest = load_manifest(store)
    return {
        "version": run.version,
        "created_at": run.created_at,
        "run_id": run.run_id,
        **evaluated.metrics,
        "n_train": trained.n_train,
        "n_validation": trained.n_validation,
        "n_holdout": evaluated.n_holdout,
        "holdout_source": evaluated.holdout_source,
        "leaked_dropped": evaluated.leaked_dropped,
        "train_seconds": round(trained.train_seconds, 3),
        "best_epoch": trained.best_epoch,
        "history": trained.history,
        "config": {**run.config, **trained.config},
        "data": {
            "manifest_sha256": summary.manifest_digest,
            "input_keys": sorted({e.key for e in manifest.entries if e.outcome == "accepted"}),
            "inputs": [vars(item) for item in summary.inputs],
            "already_seen": summary.already_seen,
        },
        "versions": package_versions(),
        "champion": evaluated.champion_metrics,
        "git_commit": git_commit(),
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
    }


def _champion_pointer(run: RunInfo, accuracy: float, reasons: list[str], data_digest: str) -> dict[str, Any]:
    return {
        "version": run.version,
        "accuracy": accuracy,
        "promoted_at": run.created_at,
        "reason": "; ".join(reasons),
        "run_id": run.run_id,
        "data_digest": data_digest,
    }


def _judge(run: RunInfo, evaluated: EvaluationRecord) -> dict[str, Any]:
    config = RunConfig.model_validate(run.config)
    return judge(
        evaluated.challenger,
        evaluated.champion,
        evaluated.paired,
        config.gate_thresholds(),
        force_promote=config.force_promote,
        reason=config.reason,
    )


def promote(store: Store, run: RunInfo, metrics: dict[str, Any], evaluated: EvaluationRecord) -> dict[str, Any]:
    """Store the verdict, then move the pointer only if the champion is still the one this run was judged against."""
    verdict = _judge(run, evaluated)
    put_verified(store, {version_key(run.version, "verdict.json"): to_json_bytes(verdict)})
    if not verdict["promoted"]:
        return verdict
    pointer = _champion_pointer(run, metrics["accuracy"], verdict["reasons"], metrics["data"]["manifest_sha256"])
    try:
        move_champion(store, pointer, evaluated.champion_etag, "promote", verdict["champion_before"])
    except PreconditionFailed:
        current, _ = read_champion(store)
        if current is not None and current["version"] == run.version:
            return verdict  # this very publish moved it before a retry: nothing was lost
        verdict = reject_for_race(verdict, current["version"] if current else None)
        put_verified(store, {version_key(run.version, "verdict.json"): to_json_bytes(verdict)})
        return verdict
    store.copy(version_key(run.version, "report.html"), LATEST_KEY)
    return verdict


def _champion_arrays(store: Store, evaluated: EvaluationRecord) -> dict[str, Any]:
    if evaluated.champion_predictions_key is None:
        return {}
    return {"champion_probabilities": load_predictions(store, evaluated.champion_predictions_key)}


def publish(
    store_uri: str,
    run: RunInfo,
    spec: DatasetSpec,
    summary: IngestSummary,
    trained: TrainRecord,
    evaluated: EvaluationRecord,
    timings: dict[str, float],
    log: Callable[[str], None],
) -> PublishResult:
    store = open_store(store_uri)
    metrics = build_metrics(run, store, summary, trained, evaluated, timings)
    provisional = _judge(run, evaluated)
    holdout = load_dataset(store, spec)
    arrays = (holdout.x_holdout, holdout.y_holdout, load_predictions(store, evaluated.predictions_key))
    report = render_report(metrics, provisional, *arrays, **_champion_arrays(store, evaluated))
    metrics["charts"] = report.figures  # the numbers behind every chart, beside the charts themselves
    files = {
        version_key(run.version, "metrics.json"): to_json_bytes(metrics),
        version_key(run.version, "report.html"): report.html.encode(),
        **{version_key(run.version, name): png for name, png in report.charts.items()},
    }
    put_verified(store, files)
    verdict = promote(store, run, metrics, evaluated)
    if verdict != provisional:  # the report is headed by the verdict that was actually reached
        report = render_report(metrics, verdict, *arrays, **_champion_arrays(store, evaluated))
        put_verified(store, {version_key(run.version, "report.html"): report.html.encode()})
    delta = verdict["gate"].get("delta_vs_champion")
    runs = record_run(
        store,
        {
            "version": run.version,
            "created_at": run.created_at,
            "promoted": verdict["promoted"],
            "accuracy": metrics["accuracy"],
            "delta_vs_champion": delta,
            "report_key": version_key(run.version, "report.html"),
            "run_id": run.run_id,
        },
    )
    store.put(INDEX_KEY, render_index(runs).encode(), "text/html; charset=utf-8")
    log(f"published {run.version}: accuracy {metrics['accuracy']:.2%}, promoted={verdict['promoted']}")
    return PublishResult(
        run.version,
        verdict["promoted"],
        version_key(run.version, "report.html"),
        version_key(run.version, "model.keras"),
        tuple(verdict["reasons"]),
    )


def no_new_data(store_uri: str, data_digest: str) -> str | None:
    """Why a run can stop early: the champion was trained on exactly the data there is now."""
    champion, _ = read_champion(open_store(store_uri))
    if champion and champion.get("data_digest") == data_digest:
        return f"no new data since champion {champion['version']}: nothing to train (use force to retrain)"
    return None
