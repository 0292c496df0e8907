"""Render a run's evaluation as one self-contained HTML page, and the index page listing every run.

The report answers three questions on one page: is the new model better, where does it fail, and what
data made it. It is built from plain numbers (the run's metrics and the promotion verdict) and the
holdout arrays; it never touches a model. Every image is inlined as a base64 PNG data URI and the CSS is
inline, so the page opens offline, from a presigned URL or as an e-mail attachment. All text coming from
metrics, verdicts or file names goes through Jinja's autoescape, and secrets are masked (``report_views``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
import numpy as np

from tasks import report_views as views
from tasks.calibration import calibration_summary
from tasks.charts import confusion_matrix_png, png_data_uri, training_curves_png
from tasks.charts_eval import confusion_difference_png, label_histogram_png, reliability_png, robustness_png
from tasks.charts_gallery import N_CLASSES, galleries, holdout_arrays

HISTORY_KEYS = ("accuracy", "val_accuracy", "loss", "val_loss")


@dataclass(frozen=True)
class RenderedReport:
    """The report page, the charts it shows (PNG bytes keyed by file name, to publish next to it), and
    ``figures``: the JSON-ready numbers behind every chart, keyed by the chart's file stem, for
    ``metrics.json``."""

    html: str
    charts: dict[str, bytes]
    figures: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _environment() -> jinja2.Environment:
    # Built on first use, not at import, so importing this module stays free of side effects.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tasks", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _confusion(labels: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    flat = np.bincount(labels * N_CLASSES + pred, minlength=N_CLASSES * N_CLASSES)
    return flat[: N_CLASSES * N_CLASSES].reshape(N_CLASSES, N_CLASSES).tolist()


def _per_class_from_confusion(cm: list[list[int]]) -> list[dict[str, Any]]:
    counts = np.asarray(cm, dtype=np.float64)
    hits = np.diag(counts)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return [
        {"digit": d, "precision": precision[d], "recall": recall[d], "f1": f1[d], "support": int(support[d])}
        for d in range(len(hits))
    ]


def _lineage_view(metrics: dict[str, Any]) -> dict[str, Any]:
    """Version, run, data digest, seeds, settings, package versions and step timings."""
    config, timings = views.mapping(metrics.get("config")), views.mapping(metrics.get("timings"))
    return {
        "lineage": [
            ("version", views.text(metrics.get("version"))),
            ("run id", views.text(metrics.get("run_id"))),
            ("created at", views.when(metrics.get("created_at"))),
            ("data manifest sha256", views.text(views.mapping(metrics.get("data")).get("manifest_sha256"))),
            ("git commit", views.text(metrics.get("git_commit"))),
            ("seed", views.text(config.get("seed"))),
            ("training time", views.num(metrics.get("train_seconds"), 1) + " s"),
        ],
        "config": views.rows(config),
        "versions": views.rows(metrics.get("versions")),
        "timings": [(views.text(step), views.num(seconds, 2)) for step, seconds in timings.items()],
        "timings_total": views.num(sum(views.number(seconds) or 0.0 for seconds in timings.values()), 2),
    }


def _robustness_view(robustness: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Condition, challenger accuracy, champion accuracy and the difference, one row per perturbation."""
    challenger, champion = views.mapping(robustness.get("challenger")), views.mapping(robustness.get("champion"))
    table = []
    for condition, value in challenger.items():
        ours, theirs = views.number(value), views.number(champion.get(condition))
        delta = None if ours is None or theirs is None else ours - theirs
        table.append((views.text(condition), views.pct(ours), views.pct(theirs), views.pp(delta)))
    return table


def _mean_confidence(calibration: dict[str, Any]) -> dict[str, str]:
    """Average confidence against accuracy over all digits: the plainest sign of over- or under-confidence."""
    bins = [b for b in views.records(calibration.get("bins")) if b.get("count")]
    total = sum(int(b["count"]) for b in bins)
    if not total:
        return {"mean_confidence": views.DASH, "mean_accuracy": views.DASH}
    mean = {key: sum(int(b["count"]) * (views.number(b.get(key)) or 0.0) for b in bins) / total
            for key in ("confidence", "accuracy")}  # fmt: skip
    return {"mean_confidence": views.pct(mean["confidence"]), "mean_accuracy": views.pct(mean["accuracy"])}


def _epochs(history: dict[str, Any], best_epoch: int | None) -> list[dict[str, Any]]:
    """One row per epoch: train and validation accuracy and loss, the kept epoch flagged."""
    series = {key: list(history.get(key) or []) for key in HISTORY_KEYS}
    n_epochs = max(len(values) for values in series.values())
    return [
        {"epoch": epoch + 1, "best": epoch + 1 == best_epoch}
        | {key: views.num(values[epoch] if epoch < len(values) else None) for key, values in series.items()}
        for epoch in range(n_epochs)
    ]


def render_report(
    metrics: dict[str, Any],
    verdict: dict[str, Any],
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    probabilities: np.ndarray,
    sample_size: int = 40,
    error_size: int = 40,
    seed: int = 0,
    *,
    champion_probabilities: np.ndarray | None = None,
    disagreement_size: int = 40,
) -> RenderedReport:
    """Render the evaluation report of one training run, promoted or not.

    Args:
        metrics: The run's metrics (see the pipeline's metrics contract); optional keys may be absent,
            and each section then says its figures are not available.
        verdict: The promotion gate's verdict: ``promoted``, ``reasons``, ``champion_before``, ``gate``.
        holdout_images: ``(n, 28, 28)`` (or ``(n, 784)``) uint8 holdout images.
        holdout_labels: ``(n,)`` true digits.
        probabilities: ``(n, 10)`` softmax output of the challenger; the prediction is the argmax.
        sample_size: Number of randomly drawn holdout digits in the samples gallery.
        error_size: Maximum number of misclassified digits shown, most confident first.
        seed: Seed of the samples gallery draw, so a re-render shows the same digits.
        champion_probabilities: ``(n, 10)`` softmax output of the current champion on the same holdout,
            or ``None`` (no champion yet): drives the confusion difference and the disagreement gallery.
        disagreement_size: Maximum number of digits shown where challenger and champion disagree.

    Returns:
        The self-contained HTML page, its PNG charts, and the numbers behind them.

    Raises:
        ValueError: If the array shapes disagree.
    """
    h = holdout_arrays(holdout_images, holdout_labels, probabilities, champion_probabilities)
    n, champion = len(h.labels), views.mapping(metrics.get("champion"))
    recorded = metrics.get("confusion_matrix")
    cm = np.asarray(_confusion(h.labels, h.pred) if recorded is None else recorded, dtype=np.int64).tolist()
    charts: dict[str, bytes] = {}
    figures: dict[str, Any] = {"confusion_matrix": cm}

    history = views.mapping(metrics.get("history"))
    best = views.number(metrics.get("best_epoch"))
    best_epoch = None if best is None else int(best)
    if any(history.get(key) for key in HISTORY_KEYS):
        charts["training_curves.png"] = training_curves_png(history, best_epoch)
        figures["training_curves"] = {"history": history, "best_epoch": best_epoch}
    charts["confusion_matrix.png"] = confusion_matrix_png(cm)
    charts["confusion_normalised.png"] = confusion_matrix_png(cm, normalise=True)
    # The champion scored on this very holdout beats figures from its own run, whose holdout may differ.
    champion_cm = champion.get("confusion_matrix")
    if h.champion_pred is not None:
        champion_cm = _confusion(h.labels, h.champion_pred)
    if champion_cm is not None and np.shape(champion_cm) != np.shape(cm):
        champion_cm = None  # a malformed matrix cannot be compared cell by cell
    if champion_cm is not None:
        difference = (np.asarray(cm) - np.asarray(champion_cm, dtype=np.int64)).tolist()
        charts["confusion_difference.png"] = confusion_difference_png(difference)
        figures["confusion_difference"] = difference

    gallery_view, gallery_charts, gallery_figures = galleries(h, sample_size, error_size, disagreement_size, seed)
    charts |= gallery_charts
    figures |= gallery_figures

    calibration = views.mapping(metrics.get("calibration")) or (
        calibration_summary(h.labels, h.probabilities) if n else {}
    )
    champion_calibration = None
    if h.champion_probabilities is not None and n:
        champion_calibration = calibration_summary(h.labels, h.champion_probabilities)
    if calibration.get("bins"):
        charts["reliability.png"] = reliability_png(calibration, champion_calibration)
        figures["reliability"] = {"challenger": calibration, "champion": champion_calibration}

    robustness = views.mapping(views.mapping(verdict.get("gate")).get("robustness"))
    if views.mapping(robustness.get("challenger")):
        charts["robustness.png"] = robustness_png(robustness)
        figures["robustness"] = robustness

    new_labels, reference_labels = views.label_histograms(metrics)
    if sum(new_labels):
        charts["label_histogram.png"] = label_histogram_png(new_labels, reference_labels)
        figures["label_histogram"] = {"new": new_labels, "reference": reference_labels}

    context = {
        "version": views.text(metrics.get("version")),
        "verdict": views.verdict_view(metrics, verdict, champion),
        "images": {name: png_data_uri(png) for name, png in charts.items()},
        "per_class": views.per_class_view(
            views.records(metrics.get("per_class")) or _per_class_from_confusion(cm),
            views.records(champion.get("per_class"))
            or ([] if champion_cm is None else _per_class_from_confusion(champion_cm)),
        ),
        "n_holdout": f"{n:,}",
        "champion_columns": champion_cm is not None or bool(champion.get("per_class")),
        "galleries": gallery_view,
        "best_epoch": views.DASH if best_epoch is None else str(best_epoch),
        "epochs": _epochs(history, best_epoch),
        "calibration": {
            "ece": views.pct(calibration.get("ece")),
            **_mean_confidence(calibration),
            "champion_ece": None if champion_calibration is None else views.pct(champion_calibration["ece"]),
        },
        "robustness": _robustness_view(robustness),
        "has_reference_labels": reference_labels is not None,
        "data": views.data_view(metrics, n),
        **_lineage_view(metrics),
    }
    html = _environment().get_template("report.html.j2").render(**context)
    return RenderedReport(html=html, charts=charts, figures=figures)


def _report_href(version: Any) -> str | None:
    # The index is published at reports/index.html and each report at models/<version>/report.html,
    # so a relative link works in the bucket, behind any host, and in a local download alike.
    if not version:
        return None
    return f"../models/{quote(str(version), safe='')}/report.html"


def render_index(runs: list[dict[str, Any]]) -> str:
    """Render ``reports/index.html``: every run, newest first, linking to its report.

    Args:
        runs: One dict per run with ``version``, ``created_at`` (ISO 8601), ``promoted``, ``accuracy``
            (fraction), ``delta_vs_champion`` (accuracy minus the champion's at the time, as a fraction;
            ``None`` when there was no champion) and ``report_key``.

    Returns:
        The self-contained HTML page.
    """
    oldest = datetime.min.replace(tzinfo=UTC)
    # Unparseable or missing timestamps sort last rather than failing the whole index.
    ordered = sorted(runs, key=lambda run: views.parse_time(run.get("created_at")) or oldest, reverse=True)
    rows = [
        {
            "when": views.when(run.get("created_at")),
            "version": views.text(run.get("version")),
            "promoted": bool(run.get("promoted")),
            "accuracy": views.pct(run.get("accuracy")),
            "delta": views.pp(run.get("delta_vs_champion")),
            "href": _report_href(run.get("version")),
        }
        for run in ordered
    ]
    champion = next((row for row in rows if row["promoted"]), None)
    return _environment().get_template("index.html.j2").render(rows=rows, champion=champion)
