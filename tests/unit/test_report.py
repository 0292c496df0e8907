"""The HTML report and run index: structure, self-containment, escaping, secrets, size; calibration figures."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tasks.calibration import calibration_summary
from tasks.charts import digit_grid_png, png_data_uri, training_curves_png
from tasks.report import RenderedReport, render_index, render_report
from tasks.report_views import looks_secret, redact, scrub

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE_KEY = "<script>alert(1)</script>.csv"
HOSTILE_CONFIG = '"><img src=x onerror=alert(2)>'
SECRETS = ("AKIA-SECRET-VALUE", "hunter2", "tok-123", "pw-456", "sig-789", "cred-000")
SECTIONS = [
    "Verdict",
    "Training curves",
    "Confusion matrix",
    "Per-class metrics",
    "Galleries",
    "Calibration",
    "Robustness",
    "Data",
    "Lineage",
]
GALLERY_PNGS = {"holdout_samples.png", "misclassified.png", "disagreements.png"}
ALWAYS_CHARTS = {"confusion_matrix.png", "confusion_normalised.png", "holdout_samples.png"}
RICH_CHARTS = ALWAYS_CHARTS | {
    "training_curves.png",
    "misclassified.png",
    "confusion_difference.png",
    "disagreements.png",
    "reliability.png",
    "robustness.png",
    "label_histogram.png",
}


class _Tags(HTMLParser):
    """Collects every start tag with its attributes, and the h2 headings' text in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_h2 = tag == "h2"
        if self._in_h2:
            self.h2.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.h2[-1] += data


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}"')
    return html[start : html.index("</section>", start)]


def _holdout(n: int, error_rate: float = 0.03, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digit-like images (a bright stroke on black), labels, and softmax output with some confident errors."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    rows = rng.integers(4, 20, n)
    for i, row in enumerate(rows):
        images[i, row : row + 6, 8:20] = rng.integers(120, 256, (6, 12), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    predicted = labels.copy()
    wrong = rng.random(n) < error_rate
    predicted[wrong] = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    probabilities = rng.random((n, 10)) * 0.1
    probabilities[np.arange(n), predicted] += rng.uniform(1.0, 20.0, n)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return images, labels, probabilities


def _scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    predicted = probabilities.argmax(axis=1)
    cm = np.zeros((10, 10), dtype=int)
    np.add.at(cm, (labels, predicted), 1)
    per_class = []
    for d in range(10):
        precision = cm[d, d] / max(cm[:, d].sum(), 1)
        recall = cm[d, d] / max(cm[d].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class.append({"digit": d, "precision": precision, "recall": recall, "f1": f1, "support": int(cm[d].sum())})
    return {"accuracy": float((predicted == labels).mean()), "per_class": per_class, "confusion_matrix": cm.tolist()}


def _metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    epochs = 8
    return {
        "version": "20261124T023609123Z-3f2a1c",
        "created_at": "2026-11-24T02:36:09.123Z",
        "run_id": "0b7e4c8e-2f0c-4d7a-9d55-0d3c1f7a9e21",
        **_scores(labels, probabilities),
        "loss": 0.0412,
        "n_train": 54000,
        "n_validation": 6000,
        "n_holdout": len(labels),
        "train_seconds": 41.2,
        "best_epoch": 6,
        "history": {
            "accuracy": list(np.linspace(0.90, 0.995, epochs)),
            "val_accuracy": list(np.linspace(0.93, 0.989, epochs)),
            "loss": list(np.linspace(0.35, 0.02, epochs)),
            "val_loss": list(np.linspace(0.25, 0.04, epochs)),
        },
        "config": {"profile": "fast", "epochs": epochs, "seed": 42, "note": HOSTILE_CONFIG},
        "data": {
            "manifest_sha256": "ab" * 32,
            "input_keys": ["incoming/a.csv", HOSTILE_KEY],
            "inputs": [
                {
                    "key": "incoming/a.csv",
                    "split": "train",
                    "outcome": "accepted",
                    "rows_accepted": 4000,
                    "rows_rejected": 0,
                    "reason": None,
                },
                {
                    "key": HOSTILE_KEY,
                    "split": "train",
                    "outcome": "quarantined",
                    "rows_accepted": 0,
                    "rows_rejected": 12,
                    "reason": f"bad header in {HOSTILE_KEY}",
                },
            ],
        },
        "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "prefect": "3.8.8"},
        "git_commit": None,
        "timings": {"ingest": 1.2, "train": 40.1, "evaluate": 2.0},
    }


def _holdout_like(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(labels)
    predicted = labels.copy()
    wrong = rng.random(n) < 0.05
    predicted[wrong] = (labels[wrong] + rng.integers(1, 10, wrong.sum())) % 10
    probabilities = rng.random((n, 10)) * 0.2
    probabilities[np.arange(n), predicted] += rng.uniform(0.5, 8.0, n)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def _rich_metrics(labels: np.ndarray, probabilities: np.ndarray, champion: np.ndarray) -> dict[str, Any]:
    """Every optional figure the pipeline can provide, with hostile text and secrets planted in it."""
    metrics = _metrics(labels, probabilities)
    metrics["champion"] = {"version": "20261120T000000000Z-aaaaaa", "loss": 0.0555, **_scores(labels, champion)}
    metrics["calibration"] = calibration_summary(labels, probabilities)
    metrics["holdout_source"] = "incoming/holdout/"
    metrics["leaked_dropped"] = 3
    metrics["config"] |= {
        "aws_secret_access_key": "AKIA-SECRET-VALUE",
        "endpoint": "http://admin:hunter2@minio.internal:9000/bucket",
        "api-token": "tok-123",
        "nested": {"password": "pw-456", "url": "s3://bucket/x?X-Amz-Signature=sig-789&X-Amz-Credential=cred-000"},
    }
    # The shape tasks.data_checks.check_batch records ...
    checks = {
        "rows": 4000,
        "reference_rows": 60000,
        "labels": {
            "batch": [410, 450, 400, 420, 390, 360, 400, 430, 380, 560],
            "reference": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
            "p_value": 0.0004,
        },
        "mean_intensity_psi": 0.03,
        "ink_fraction_psi": 0.27,
        "blank_images": 2,
        "inverted_images": 1,
        "duplicate_images": 5,
        "warnings": ["label 9 is over-represented", HOSTILE_KEY],
    }
    # ... and the flat one the report also reads.
    flat = {"label_histogram": [10] * 10, "reference_histogram": None, "chi2_p": None, "psi_mean_intensity": None,
            "psi_ink_fraction": None, "blank": 0, "inverted": 0, "duplicates_within": 0, "warnings": []}  # fmt: skip
    metrics["data"]["inputs"][0]["checks"] = checks
    metrics["data"]["inputs"] += [
        {"key": "incoming/b.csv", "split": "train", "outcome": "duplicate", "rows_accepted": 0, "rows_rejected": 0,
         "reason": "same content as incoming/a.csv; not counted twice", "checks": None},
        {"key": "incoming/c.csv", "split": "train", "outcome": "accepted", "rows_accepted": 100, "rows_rejected": 0,
         "reason": None, "checks": flat},
    ]  # fmt: skip
    return metrics


PROMOTED = {
    "promoted": True,
    "reasons": ["first model: no champion yet; accuracy 97.00% ≥ floor 95.00%"],
    "champion_before": None,
    "gate": {"challenger_accuracy": 0.97, "champion_accuracy": None, "floor": 0.95},
}
REJECTED = {
    "promoted": False,
    "reasons": ["accuracy 97.00% is 0.50 pp below the champion's 97.50%"],
    "champion_before": "20261120T000000000Z-aaaaaa",
    "gate": {"challenger_accuracy": 0.97, "champion_accuracy": 0.975, "floor": 0.95},
}
GATED = {
    "promoted": False,
    "reasons": ["digit 9 recall fell 2.10 pp, more than the 1.00 pp allowed"],
    "champion_before": "20261120T000000000Z-aaaaaa",
    "gate": {
        "floor": 0.95,
        "challenger_accuracy": 0.97,
        "champion_accuracy": 0.955,
        "delta_vs_champion": 0.015,
        "rules": [
            {"name": "floor", "passed": True, "detail": "97.00% ≥ 95.00%"},
            {"name": "per-class recall", "passed": False, "detail": f"digit 9 fell 2.10 pp {HOSTILE_CONFIG}"},
        ],
        "mcnemar": {"p_value": 0.0123, "challenger_only_correct": 41, "champion_only_correct": 17},
        "robustness": {
            "challenger": {"clean": 0.97, "shift": 0.91, "noise": 0.88},
            "champion": {"clean": 0.955, "shift": 0.90, "noise": 0.89},
        },
    },
}


@pytest.fixture(scope="module")
def holdout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _holdout(500)


@pytest.fixture(scope="module")
def promoted(holdout: tuple[np.ndarray, np.ndarray, np.ndarray]) -> RenderedReport:
    images, labels, probabilities = holdout
    return render_report(_metrics(labels, probabilities), PROMOTED, images, labels, probabilities)


@pytest.fixture(scope="module")
def rich(holdout: tuple[np.ndarray, np.ndarray, np.ndarray]) -> RenderedReport:
    images, labels, probabilities = holdout
    champion = _holdout_like(labels, 7)
    metrics = _rich_metrics(labels, probabilities, champion)
    return render_report(metrics, GATED, images, labels, probabilities, champion_probabilities=champion)


def _img_sources(html: str) -> list[str]:
    return [attrs.get("src") or "" for tag, attrs in _parse(html).tags if tag == "img"]


@pytest.mark.parametrize("name", ["promoted", "rich"])
def test_sections_present_in_order(name: str, request: pytest.FixtureRequest) -> None:
    assert _parse(request.getfixturevalue(name).html).h2 == SECTIONS


@pytest.mark.parametrize("name", ["promoted", "rich"])
def test_every_image_is_an_inline_valid_png(name: str, request: pytest.FixtureRequest) -> None:
    report: RenderedReport = request.getfixturevalue(name)
    sources = _img_sources(report.html)
    prefix = "data:image/png;base64,"
    for src in sources:
        assert src.startswith(prefix)
        png = base64.b64decode(src.removeprefix(prefix), validate=True)
        with Image.open(io.BytesIO(png)) as image:
            image.verify()
    # every chart is inlined, except the gallery grids: the page shows those digits as tiles with text captions
    page_charts = {png for name, png in report.charts.items() if name not in GALLERY_PNGS}
    assert {png_data_uri(png) for png in page_charts} <= set(sources)
    assert len(sources) > 40


@pytest.mark.parametrize("name", ["promoted", "rich"])
def test_self_contained(name: str, request: pytest.FixtureRequest) -> None:
    html = request.getfixturevalue(name).html
    tags = _parse(html).tags
    assert not [tag for tag, _ in tags if tag in {"script", "link", "iframe", "object", "embed", "base"}]
    for _, attrs in tags:
        for attr in ("src", "href", "srcset", "poster", "data"):
            assert not (attrs.get(attr) or "").lower().startswith(("http://", "https://", "//"))
    assert not re.search(r"url\(|@import", html.split("</style>")[0])
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_hostile_strings_are_escaped(rich: RenderedReport) -> None:
    html = rich.html
    assert HOSTILE_KEY not in html and "<img src=x" not in html
    escaped_key = "&lt;script&gt;alert(1)&lt;/script&gt;.csv"
    data = _section(html, "data")
    # the quarantined file's name (in the table and the list of input keys), its reason and a drift
    # warning naming it all show as text
    assert data.count(escaped_key) == 4
    assert 'class="refused">quarantined' in data
    assert "&lt;img src=x onerror=alert(2)&gt;" in _section(html, "lineage")
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in _section(html, "verdict")


def test_secrets_never_shown(rich: RenderedReport) -> None:
    html = rich.html
    for secret in SECRETS:
        assert secret not in html
    lineage = _section(html, "lineage")
    assert lineage.count("•••") >= 4
    assert "http://minio.internal:9000/bucket" in lineage and "admin" not in lineage
    assert "seed" in lineage and "42" in lineage


def test_redaction_helpers() -> None:
    assert looks_secret("AWS_SECRET_ACCESS_KEY") and looks_secret("awsAccessKeyId") and looks_secret("db-password")
    assert not looks_secret("seed") and not looks_secret("profile")
    assert scrub("see https://u:p@host:1/x and ftp://tok@h") == "see https://host:1/x and ftp://h"
    assert redact({"a": [{"token": "t"}], "b": 1}) == {"a": [{"token": "•••"}], "b": 1}


def test_rich_report_shows_champion_comparison(rich: RenderedReport) -> None:
    html = rich.html
    verdict = _section(html, "verdict")
    assert "Rejected" in html[: html.index('<section id="verdict"')]
    assert verdict.index("Not promoted, because") < verdict.index("digit 9 recall fell")
    assert "+1.50 pp" in verdict and "95.50%" in verdict
    assert 'class="fail">failed' in verdict and "p = 0.0123" in verdict and "41" in verdict
    assert "-0.0143 vs champion's 0.0555" in verdict
    assert "confusion_difference.png" in rich.charts and "Not available" not in _section(html, "confusion")
    assert "champion F1" in _section(html, "per-class")
    galleries = _section(html, "galleries")
    assert "only the champion right" in galleries and "champion " in galleries
    assert "expected calibration error" in _section(html, "calibration") and "champion's ECE" in html
    robustness = _section(html, "robustness")
    assert "shift" in robustness and "+1.00 pp" in robustness and "robustness.png" in rich.charts
    data = _section(html, "data")
    assert "0.0004" in data and "0.270" in data and data.count('class="num alert"') == 2
    assert "incoming/holdout/" in data and "label 9 is over-represented" in data
    assert set(rich.charts) == RICH_CHARTS


def test_figures_carry_the_numbers_behind_every_chart(rich: RenderedReport) -> None:
    stems = {name.removesuffix(".png") for name in rich.charts} - {"confusion_normalised"}
    assert stems <= set(rich.figures)
    json.dumps(rich.figures)  # JSON-ready for metrics.json
    assert rich.figures["label_histogram"]["new"][9] == 570
    assert rich.figures["label_histogram"]["reference"][0] == 5923
    tiles = rich.figures["disagreements"]
    assert tiles and all(t["pred"] != t["champion_pred"] for t in tiles)
    # the challenger's new mistakes lead the disagreement gallery
    assert tiles[0]["champion_pred"] == tiles[0]["label"] != tiles[0]["pred"]


def test_promoted_headline_without_champion(promoted: RenderedReport) -> None:
    verdict = _section(promoted.html, "verdict")
    assert "Promoted" in verdict and "97.00%" in verdict and "no champion yet" in verdict
    assert "0.0412" in verdict
    html = promoted.html
    assert "Not available: no champion" in _section(html, "confusion")
    assert "Not available: no champion predictions" in _section(html, "galleries")
    assert "Robustness figures not available" in _section(html, "robustness")
    assert "Drift figures not available" in _section(html, "data")
    # calibration is computed from the arrays when metrics lack it
    assert "reliability.png" in promoted.charts


def test_rejected_reasons_come_before_curves(holdout: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    images, labels, probabilities = holdout
    metrics = _metrics(labels, probabilities)
    html = render_report(metrics, REJECTED, images, labels, probabilities, sample_size=10, error_size=5).html
    reason = html.index("below the champion&#39;s 97.50%")
    assert html.index("Rejected") < reason < html.index("<h2>Training curves")
    assert "-0.50 pp" in html


def test_worst_two_classes_highlighted(promoted: RenderedReport) -> None:
    assert promoted.html.count('<tr class="worst">') == 2


def test_robust_to_missing_optional_keys(holdout: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    images, labels, probabilities = holdout
    minimal = {"version": "v1", "accuracy": 0.9, "loss": 0.3}
    report = render_report(minimal, {"promoted": False}, images, labels, probabilities, sample_size=5, error_size=0)
    assert _parse(report.html).h2 == SECTIONS
    assert set(report.charts) == ALWAYS_CHARTS | {"reliability.png"}
    assert "Training history not available" in report.html and "No new input files" in report.html


def test_shape_mismatch_is_refused(holdout: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    images, labels, probabilities = holdout
    with pytest.raises(ValueError, match="champion_probabilities"):
        render_report({}, {}, images, labels, probabilities, champion_probabilities=probabilities[:10])


def test_rerender_is_identical_and_errors_most_confident_first(
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray], promoted: RenderedReport
) -> None:
    images, labels, probabilities = holdout
    again = render_report(_metrics(labels, probabilities), PROMOTED, images, labels, probabilities)
    # Same seed, same inputs: same sample gallery, byte for byte (so reruns are diffable).
    assert again == promoted
    pred, conf = probabilities.argmax(axis=1), probabilities.max(axis=1)
    wrong = np.flatnonzero(pred != labels)
    top = wrong[np.argsort(-conf[wrong])][:40]
    assert len(top) > 5
    expected = digit_grid_png(images[top], labels[top], pred[top], "Most confident errors", conf[top])
    assert promoted.charts["misclassified.png"] == expected
    assert [t["index"] for t in promoted.figures["misclassified"]] == top.tolist()


def test_ten_thousand_holdout_stays_small() -> None:
    images, labels, probabilities = _holdout(10_000)
    champion = _holdout_like(labels, 7)
    metrics = _rich_metrics(labels, probabilities, champion)
    report = render_report(metrics, GATED, images, labels, probabilities, champion_probabilities=champion)
    assert len(report.html.encode()) <= 3 * 1024 * 1024


def test_chart_helpers_handle_empty_input() -> None:
    empty = digit_grid_png(np.zeros((0, 28, 28), np.uint8), np.zeros(0), np.zeros(0), "errors")
    assert empty.startswith(PNG_SIGNATURE)
    assert training_curves_png({}, None).startswith(PNG_SIGNATURE)
    assert training_curves_png({"loss": [0.9, 0.4]}, 2).startswith(PNG_SIGNATURE)  # one panel empty
    assert png_data_uri(b"\x89PNG").startswith("data:image/png;base64,")


def test_calibration_summary_bins_and_ece() -> None:
    labels = np.array([0, 0, 1, 1])
    # two digits at 0.9 confidence (one right), two at 0.6 (both right)
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    probabilities = np.pad(probabilities, ((0, 0), (0, 8)))
    labels[1] = 1
    summary = calibration_summary(labels, probabilities, n_bins=10)
    assert len(summary["bins"]) == 10 and summary["n"] == 4
    filled = [b for b in summary["bins"] if b["count"]]
    assert [(b["lower"], b["count"], b["accuracy"]) for b in filled] == [(pytest.approx(0.5), 2, 1.0),
                                                                         (pytest.approx(0.8), 2, 0.5)]  # fmt: skip
    # ECE = 2/4·|1.0 − 0.6| + 2/4·|0.5 − 0.9| = 0.4
    assert summary["ece"] == pytest.approx(0.4) and summary["mce"] == pytest.approx(0.4)
    assert summary["bins"][0]["accuracy"] is None
    json.dumps(summary)


def test_calibration_summary_perfect_and_invalid() -> None:
    labels = np.arange(10)
    assert calibration_summary(labels, np.eye(10))["ece"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        calibration_summary(labels, np.eye(10)[:5])
    with pytest.raises(ValueError):
        calibration_summary(np.zeros(0), np.zeros((0, 10)))


def test_index_sorted_escaped_and_linked() -> None:
    runs = [
        {"version": "v-old", "created_at": "2026-11-01T00:00:00Z", "promoted": True, "accuracy": 0.981,
         "delta_vs_champion": None, "report_key": "models/v-old/report.html"},
        {"version": "v-new", "created_at": "2026-11-24T02:36:09.123Z", "promoted": False, "accuracy": 0.9801,
         "delta_vs_champion": -0.0009, "report_key": "models/v-new/report.html"},
        {"version": "<b>x</b>", "created_at": "2026-11-10T00:00:00Z", "promoted": True, "accuracy": 0.99,
         "delta_vs_champion": 0.009, "report_key": "models/x/report.html"},
    ]  # fmt: skip
    html = render_index(runs)
    table = html[html.index("<tbody>") :]
    assert table.index("v-new") < table.index("&lt;b&gt;x&lt;/b&gt;") < table.index("v-old")
    assert "<b>x</b>" not in html
    hrefs = [attrs.get("href") for tag, attrs in _parse(html).tags if tag == "a"]
    assert hrefs == [
        "../models/v-new/report.html",
        "../models/%3Cb%3Ex%3C%2Fb%3E/report.html",
        "../models/v-old/report.html",
    ]
    assert "98.01%" in html and "-0.09 pp" in html and "+0.90 pp" in html
    assert '<td class="num">—</td>' in html
    tags = _parse(html).tags
    assert not [tag for tag, _ in tags if tag in {"script", "link", "img"}]


def test_index_with_no_runs() -> None:
    assert "No runs yet" in render_index([])
