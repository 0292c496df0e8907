"""The HTML report and run index: structure, self-containment, escaping, size."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tasks.charts import digit_grid_png, png_data_uri, training_curves_png
from tasks.report import RenderedReport, render_index, render_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE_KEY = "<script>alert(1)</script>.csv"
HOSTILE_CONFIG = '"><img src=x onerror=alert(2)>'
SECTIONS = [
    "Verdict",
    "Training curves",
    "Confusion matrix",
    "Per-class metrics",
    "Galleries",
    "Data",
    "Lineage",
]
CHART_NAMES = {"training_curves.png", "confusion_matrix.png", "holdout_samples.png", "misclassified.png"}


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


def _metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    predicted = probabilities.argmax(axis=1)
    cm = np.zeros((10, 10), dtype=int)
    np.add.at(cm, (labels, predicted), 1)
    per_class = []
    for d in range(10):
        precision = cm[d, d] / max(cm[:, d].sum(), 1)
        recall = cm[d, d] / max(cm[d].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class.append({"digit": d, "precision": precision, "recall": recall, "f1": f1, "support": int(cm[d].sum())})
    epochs = 8
    return {
        "version": "20261124T023609123Z-3f2a1c",
        "created_at": "2026-11-24T02:36:09.123Z",
        "run_id": "0b7e4c8e-2f0c-4d7a-9d55-0d3c1f7a9e21",
        "accuracy": float((predicted == labels).mean()),
        "loss": 0.0412,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
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
                    "outcome": "rejected",
                    "rows_accepted": 0,
                    "rows_rejected": 12,
                    "reason": "bad header",
                },
            ],
        },
        "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "prefect": "3.8.8"},
        "git_commit": None,
        "timings": {"ingest": 1.2, "train": 40.1, "evaluate": 2.0},
    }


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


@pytest.fixture(scope="module")
def holdout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _holdout(500)


@pytest.fixture(scope="module")
def promoted(holdout: tuple[np.ndarray, np.ndarray, np.ndarray]) -> RenderedReport:
    images, labels, probabilities = holdout
    return render_report(_metrics(labels, probabilities), PROMOTED, images, labels, probabilities)


def test_sections_present_in_order(promoted: RenderedReport) -> None:
    assert _parse(promoted.html).h2 == SECTIONS


def test_images_are_inline_valid_pngs(promoted: RenderedReport) -> None:
    sources = [attrs.get("src") or "" for tag, attrs in _parse(promoted.html).tags if tag == "img"]
    assert len(sources) == 4
    prefix = "data:image/png;base64,"
    for src in sources:
        assert src.startswith(prefix)
        png = base64.b64decode(src.removeprefix(prefix), validate=True)
        assert png.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(png)) as image:
            image.verify()


def test_self_contained(promoted: RenderedReport) -> None:
    tags = _parse(promoted.html).tags
    assert not [tag for tag, _ in tags if tag in {"script", "link", "iframe", "object", "embed"}]
    for _, attrs in tags:
        for name in ("src", "href"):
            assert not (attrs.get(name) or "").lower().startswith(("http://", "https://", "//"))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in promoted.html


def test_hostile_strings_are_escaped(promoted: RenderedReport) -> None:
    html = promoted.html
    assert HOSTILE_KEY not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.csv" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_charts_dict_holds_four_pngs(promoted: RenderedReport) -> None:
    assert set(promoted.charts) == CHART_NAMES
    assert all(png.startswith(PNG_SIGNATURE) for png in promoted.charts.values())


def test_promoted_headline_without_champion(promoted: RenderedReport) -> None:
    verdict = promoted.html[: promoted.html.index("<h2>Training curves")]
    assert "Promoted" in verdict and "97.00%" in verdict and "no champion yet" in verdict
    assert "0.0412" in verdict


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
    assert set(report.charts) == CHART_NAMES


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


def test_ten_thousand_holdout_stays_small() -> None:
    images, labels, probabilities = _holdout(10_000)
    report = render_report(_metrics(labels, probabilities), PROMOTED, images, labels, probabilities)
    assert len(report.html.encode()) < 3 * 1024 * 1024


def test_chart_helpers_handle_empty_input() -> None:
    empty = digit_grid_png(np.zeros((0, 28, 28), np.uint8), np.zeros(0), np.zeros(0), "errors")
    assert empty.startswith(PNG_SIGNATURE)
    assert training_curves_png({}, None).startswith(PNG_SIGNATURE)
    assert png_data_uri(b"\x89PNG").startswith("data:image/png;base64,")


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
