"""The publish step: metrics, verdict and report stored and verified, then the champion pointer, then the index."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.dataset import DatasetSpec, load_dataset
from tasks.gate import judge
from tasks.ingest import IngestSummary
from tasks.lineage import git_commit, package_versions
from tasks.manifest import load_manifest
from tasks.pipeline import EvaluationRecord, TrainRecord, load_predictions
from tasks.publish import (
    INDEX_KEY,
    LATEST_KEY,
    MAX_CONFLICT_RETRIES,
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


def _judge(run: RunInfo, accuracy: float, champion: dict[str, Any] | None) -> dict[str, Any]:
    force, reason = bool(run.config.get("force_promote")), run.config.get("reason")
    return judge(run.version, accuracy, champion, force_promote=force, reason=reason)


def _decide_and_promote(
    store: Store,
    run: RunInfo,
    metrics: dict[str, Any],
    evaluated: EvaluationRecord,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Judge, store the verdict, and move the pointer; re-judge whenever the champion moved meanwhile."""
    champion, etag = evaluated.champion, evaluated.champion_etag
    for _ in range(MAX_CONFLICT_RETRIES):
        if champion is not None and champion["version"] == run.version:
            return json.loads(store.get(version_key(run.version, "verdict.json")))  # a retried publish
        verdict = _judge(run, metrics["accuracy"], champion)
        put_verified(store, {version_key(run.version, "verdict.json"): to_json_bytes(verdict)})
        if not verdict["promoted"]:
            return verdict
        pointer = _champion_pointer(run, metrics["accuracy"], verdict["reasons"], metrics["data"]["manifest_sha256"])
        try:
            move_champion(store, pointer, etag, "promote", verdict["champion_before"])
        except PreconditionFailed:
            log("the champion changed while this run was judged: judging again against the new champion")
            champion, etag = read_champion(store)
            continue
        store.copy(version_key(run.version, "report.html"), LATEST_KEY)
        return verdict
    raise PreconditionFailed(f"the champion kept changing; {run.version} published but not promoted")


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
    provisional = _judge(run, metrics["accuracy"], evaluated.champion)
    dataset = load_dataset(store, spec)
    report = render_report(
        metrics,
        provisional,
        dataset.x_holdout,
        dataset.y_holdout,
        load_predictions(store, evaluated.predictions_key),
    )
    files = {
        version_key(run.version, "metrics.json"): to_json_bytes(metrics),
        version_key(run.version, "report.html"): report.html.encode(),
        **{version_key(run.version, name): png for name, png in report.charts.items()},
    }
    put_verified(store, files)
    verdict = _decide_and_promote(store, run, metrics, evaluated, log)
    if verdict != provisional:  # the report is headed by the verdict that was actually reached
        report = render_report(
            metrics,
            verdict,
            dataset.x_holdout,
            dataset.y_holdout,
            load_predictions(store, evaluated.predictions_key),
        )
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
