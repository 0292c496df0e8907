"""Prefect artifacts of a retrain run: what a person sees on the run's page in the Prefect UI.

- `mnist-run-summary` (markdown): the verdict, accuracy against the champion, the data counts;
- `mnist-per-class` (table): precision, recall, f1 and support of every digit;
- `mnist-report` (link): the version's HTML report, a presigned URL on S3 (a file URL locally);
- a progress artifact updated after every training epoch.

The figures are read back from what the run published (`metrics.json`, `verdict.json`), so the artifacts show
exactly what the store holds. An artifact that cannot be written is logged and never fails the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks.ingest import IngestSummary
from tasks.publish import PublishResult, version_key
from tasks.store import open_store

SUMMARY_KEY = "mnist-run-summary"
PER_CLASS_KEY = "mnist-per-class"
REPORT_KEY = "mnist-report"
REPORT_LINK_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


@contextmanager
def _best_effort(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:  # observability must never fail a training run
        get_run_logger().warning(f"could not create the {what} artifact: {type(error).__name__}: {error}")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def summary_markdown(metrics: dict[str, Any], verdict: dict[str, Any], summary: IngestSummary) -> str:
    gate = verdict.get("gate", {})
    delta = gate.get("delta_vs_champion")
    champion = verdict.get("champion_before") or "none yet"
    outcome = "**promoted to champion**" if verdict.get("promoted") else "**not promoted**"
    rows_in = sum(item.rows_accepted for item in summary.inputs)
    quarantined = [item.key for item in summary.inputs if item.outcome == "quarantined"]
    lines = [
        f"# Version `{metrics['version']}`: {outcome}",
        "",
        *[f"- {reason}" for reason in verdict.get("reasons", [])],
        "",
        "| | challenger | champion before | delta |",
        "|---|---|---|---|",
        f"| holdout accuracy | {_pct(gate.get('challenger_accuracy', metrics.get('accuracy')))} "
        f"| {_pct(gate.get('champion_accuracy'))} ({champion}) "
        f"| {'—' if delta is None else f'{delta * 100:+.2f} pp'} |",
        "",
        "| data | count |",
        "|---|---|",
        f"| training images | {metrics.get('n_train', 0):,} (+ {metrics.get('n_validation', 0):,} validation) |",
        f"| holdout images | {metrics.get('n_holdout', 0):,} ({metrics.get('holdout_source', '')}) |",
        f"| new inputs this run | {len(summary.inputs)} ({rows_in:,} rows accepted) |",
        f"| quarantined this run | {len(quarantined)} |",
        f"| inputs seen before | {summary.already_seen} |",
        "",
        f"Training: {metrics.get('train_seconds', 0):.1f} s, best epoch {metrics.get('best_epoch', '—')}.",
    ]
    return "\n".join(lines)


def per_class_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "digit": digit,
            "precision": round(row["precision"], 4),
            "recall": round(row["recall"], 4),
            "f1": round(row["f1"], 4),
            "support": row["support"],
        }
        for digit, row in enumerate(metrics["per_class"])
    ]


def publish_artifacts(store_uri: str, result: PublishResult, summary: IngestSummary) -> None:
    """The summary, the per-class table and the report link of a published version."""
    with _best_effort("summary, per-class and report"):
        store = open_store(store_uri)
        metrics = json.loads(store.get(version_key(result.version, "metrics.json")))
        verdict = json.loads(store.get(version_key(result.version, "verdict.json")))
        create_markdown_artifact(summary_markdown(metrics, verdict, summary), key=SUMMARY_KEY)
        description = f"holdout figures of {result.version}"
        create_table_artifact(per_class_rows(metrics), key=PER_CLASS_KEY, description=description)
        create_link_artifact(
            store.url(result.report_key, REPORT_LINK_SECONDS),
            link_text=f"report of {result.version}",
            key=REPORT_KEY,
            description="valid 7 days on S3; `mnist-pipeline report --url` makes a fresh one",
        )


def note(message: str) -> None:
    """A run that ended without publishing (no new data) still says why on its page."""
    with _best_effort("summary"):
        create_markdown_artifact(f"# Nothing published\n\n{message}", key=SUMMARY_KEY)


def epoch_progress() -> Any:
    """A Keras callback: a progress artifact created when training starts and updated after every epoch."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        artifact_id: Any = None

        def _update(self, done: int, description: str) -> None:
            total = max(1, int(self.params.get("epochs") or 1))
            with _best_effort("progress"):
                if self.artifact_id is None:
                    self.artifact_id = create_progress_artifact(100.0 * done / total, description=description)
                else:
                    update_progress_artifact(self.artifact_id, 100.0 * done / total, description=description)

        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self._update(0, f"training: 0/{self.params.get('epochs')} epochs")

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            accuracy = (logs or {}).get("val_accuracy")
            figure = f", validation accuracy {accuracy:.2%}" if accuracy is not None else ""
            self._update(epoch + 1, f"training: {epoch + 1}/{self.params.get('epochs')} epochs{figure}")

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            if self.model.stop_training:  # early stopping: the remaining epochs will not come
                self._update(int(self.params.get("epochs") or 1), "training: stopped early (best weights kept)")

    return EpochProgress()
