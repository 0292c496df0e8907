"""Render a run's evaluation as one self-contained HTML page, and the index page listing every run.

The report is built from plain numbers (the run's metrics and the promotion verdict) and the holdout
arrays; it never touches the model. Every chart is inlined as a base64 PNG data URI and the CSS is
inline, so the page opens offline, from object storage or as an e-mail attachment. All text coming
from metrics, verdicts or file names goes through Jinja's autoescape.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
import numpy as np

from tasks.charts import confusion_matrix_png, digit_grid_png, png_data_uri, training_curves_png

DASH = "—"
N_CLASSES = 10


@dataclass(frozen=True)
class RenderedReport:
    """The report page plus the charts it inlines, keyed by file name, for publishing next to it."""

    html: str
    charts: dict[str, bytes]


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


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _pct(value: Any) -> str:
    number = _float(value)
    return DASH if number is None else f"{number:.2%}"


def _pp(delta: Any) -> str:
    """Format an accuracy difference given as a fraction (0.0012) in percentage points ("+0.12 pp")."""
    number = _float(delta)
    return DASH if number is None else f"{number * 100:+.2f} pp"


def _num(value: Any, digits: int = 4) -> str:
    number = _float(value)
    return DASH if number is None else f"{number:.{digits}f}"


def _count(value: Any) -> str:
    number = _float(value)
    return _text(value) if number is None or not number.is_integer() else f"{int(number):,}"


def _text(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Naive stamps are taken as UTC so they can be compared with aware ones.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    parsed = _parse_time(value)
    return _text(value) if parsed is None else parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rows(mapping: Any) -> list[tuple[str, str]]:
    return [(str(key), _text(value)) for key, value in _mapping(mapping).items()]


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


def _per_class_view(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scored = [i for i, entry in enumerate(entries) if _float(entry.get("f1")) is not None]
    worst = set(sorted(scored, key=lambda i: _float(entries[i]["f1"]) or 0.0)[:2])
    return [
        {
            **{score: _num(entry.get(score)) for score in ("precision", "recall", "f1")},
            "digit": _text(entry.get("digit")),
            "support": _count(entry.get("support")),
            "worst": i in worst,
        }
        for i, entry in enumerate(entries)
    ]


def _verdict_view(metrics: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    gate = _mapping(verdict.get("gate"))
    challenger = _float(gate.get("challenger_accuracy"))
    if challenger is None:
        challenger = _float(metrics.get("accuracy"))
    champion = _float(gate.get("champion_accuracy"))
    champion_before = verdict.get("champion_before")
    if isinstance(champion_before, dict):
        champion_before = champion_before.get("version")
    return {
        "promoted": bool(verdict.get("promoted")),
        "reasons": [str(reason) for reason in verdict.get("reasons") or []] or ["no reason recorded"],
        "accuracy": _pct(challenger),
        "loss": _num(metrics.get("loss")),
        "has_champion": champion is not None,
        "champion_accuracy": _pct(champion),
        "delta": _pp(None if challenger is None or champion is None else challenger - champion),
        "improved": challenger is not None and champion is not None and challenger >= champion,
        "champion_before": None if champion_before is None else _text(champion_before),
        # The floor is optional: a gate that promotes every completed run has none.
        "floor": None if _float(gate.get("floor")) is None else _pct(gate.get("floor")),
    }


def _inputs_view(inputs: Any) -> list[dict[str, Any]]:
    return [
        {
            **{field: _text(item.get(field)) for field in ("key", "split", "outcome", "reason")},
            **{field: _count(item.get(field)) for field in ("rows_accepted", "rows_rejected")},
            "accepted": item.get("outcome") == "accepted",
        }
        for item in (inputs if isinstance(inputs, list) else [])
        if isinstance(item, dict)
    ]


def _provenance_view(metrics: dict[str, Any], n_holdout: int) -> dict[str, Any]:
    """Template context of the data and lineage sections: where the run's inputs and settings came from."""
    data, timings = _mapping(metrics.get("data")), _mapping(metrics.get("timings"))
    return {
        "counts": [
            ("training rows", _count(metrics.get("n_train"))),
            ("validation rows", _count(metrics.get("n_validation"))),
            ("holdout rows", _count(metrics.get("n_holdout", n_holdout))),
        ],
        "inputs": _inputs_view(data.get("inputs")),
        "lineage": [
            ("version", _text(metrics.get("version"))),
            ("run id", _text(metrics.get("run_id"))),
            ("created at", _when(metrics.get("created_at"))),
            ("manifest sha256", _text(data.get("manifest_sha256"))),
            ("git commit", _text(metrics.get("git_commit"))),
            ("training time", _num(metrics.get("train_seconds"), 1) + " s"),
        ],
        "config": _rows(metrics.get("config")),
        "versions": _rows(metrics.get("versions")),
        "timings": [(str(step), _num(seconds, 2)) for step, seconds in timings.items()],
        "timings_total": _num(sum(_float(seconds) or 0.0 for seconds in timings.values()), 2),
    }


def _as_arrays(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n = len(labels)
    if probabilities.shape != (n, N_CLASSES):
        raise ValueError(f"probabilities must have shape ({n}, {N_CLASSES}), got {probabilities.shape}")
    images = np.asarray(images)
    if images.size != n * 28 * 28:
        raise ValueError(f"expected {n} images of 28x28 pixels, got array of shape {images.shape}")
    # Flattened (n, 784) rows are accepted too: that is how the CSV inputs store them.
    return images.reshape(n, 28, 28), labels, probabilities


def render_report(
    metrics: dict[str, Any],
    verdict: dict[str, Any],
    holdout_images: np.ndarray,
    holdout_labels: np.ndarray,
    probabilities: np.ndarray,
    sample_size: int = 40,
    error_size: int = 40,
    seed: int = 0,
) -> RenderedReport:
    """Render the evaluation report of one training run.

    Args:
        metrics: The run's metrics (see the pipeline's metrics contract); optional keys may be absent.
        verdict: The promotion gate's verdict: ``promoted``, ``reasons``, ``champion_before``, ``gate``.
        holdout_images: ``(n, 28, 28)`` (or ``(n, 784)``) uint8 holdout images.
        holdout_labels: ``(n,)`` true digits.
        probabilities: ``(n, 10)`` softmax output; the prediction is the argmax.
        sample_size: Number of randomly drawn holdout digits in the samples gallery.
        error_size: Maximum number of misclassified digits shown, most confident first.
        seed: Seed of the samples gallery draw, so a re-render shows the same digits.

    Returns:
        The self-contained HTML page and the four PNG charts it inlines.

    Raises:
        ValueError: If the array shapes disagree.
    """
    images, labels, probabilities = _as_arrays(holdout_images, holdout_labels, probabilities)
    pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    n = len(labels)

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(max(sample_size, 0), n), replace=False))
    wrong = np.flatnonzero(pred != labels)
    # Confident mistakes are the most telling (label noise, systematic confusions), so they lead.
    errors = wrong[np.argsort(-confidence[wrong], kind="stable")][: max(error_size, 0)]

    cm = metrics.get("confusion_matrix") or _confusion(labels, pred)
    per_class = metrics.get("per_class") or _per_class_from_confusion(cm)
    history = _mapping(metrics.get("history"))
    best_epoch = _float(metrics.get("best_epoch"))
    charts = {
        "training_curves.png": training_curves_png(history, None if best_epoch is None else int(best_epoch)),
        "confusion_matrix.png": confusion_matrix_png(cm),
        "holdout_samples.png": digit_grid_png(
            images[sample],
            labels[sample],
            pred[sample],
            f"{len(sample)} random holdout digits",
            confidence[sample],
        ),
        "misclassified.png": digit_grid_png(
            images[errors], labels[errors], pred[errors], "Most confident errors", confidence[errors]
        ),
    }
    context = {
        "version": _text(metrics.get("version")),
        "verdict": _verdict_view(metrics, verdict),
        "images": {name: png_data_uri(png) for name, png in charts.items()},
        "per_class": _per_class_view(per_class),
        "n_holdout": f"{n:,}",
        "n_wrong": f"{len(wrong):,}",
        "n_samples": len(sample),
        "n_errors_shown": len(errors),
        "best_epoch": DASH if best_epoch is None else str(int(best_epoch)),
        "n_epochs": len(history.get("loss") or history.get("accuracy") or []),
        **_provenance_view(metrics, n),
    }
    html = _environment().get_template("report.html.j2").render(**context)
    return RenderedReport(html=html, charts=charts)


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
    ordered = sorted(runs, key=lambda run: _parse_time(run.get("created_at")) or oldest, reverse=True)
    rows = [
        {
            "when": _when(run.get("created_at")),
            "version": _text(run.get("version")),
            "promoted": bool(run.get("promoted")),
            "accuracy": _pct(run.get("accuracy")),
            "delta": _pp(run.get("delta_vs_champion")),
            "href": _report_href(run.get("version")),
        }
        for run in ordered
    ]
    champion = next((row for row in rows if row["promoted"]), None)
    return _environment().get_template("index.html.j2").render(rows=rows, champion=champion)
