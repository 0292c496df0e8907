"""The galleries of holdout digits: which digits to show, as HTML tiles and as stored PNG grids.

Three galleries answer "where does it fail": a seeded random sample, the most confident errors, and the
digits where challenger and champion disagree. In the page each digit is its own tiny PNG with a real
text caption, so the grid reflows from a laptop to a phone; the same galleries are also drawn as one
PNG each (``digit_grid_png``) to store next to the report.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from tasks.charts import digit_grid_png, ink_max, png_data_uri

N_CLASSES = 10


def digit_tile_png(image: np.ndarray) -> bytes:
    """One digit as a tiny greyscale PNG (a few hundred bytes), dark ink on white, for HTML galleries.

    The page scales it up with ``image-rendering: pixelated``, so captions can be real, wrapping text
    rather than words burnt into a wide chart that a phone would shrink out of legibility.
    """
    pixels = np.asarray(image, dtype=np.float64)
    scaled = np.clip(pixels / ink_max(np.asarray(image)), 0.0, 1.0)
    inverted = np.round(255.0 * (1.0 - scaled)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(inverted).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Holdout:
    """The holdout with both models' answers, checked for consistent shapes once."""

    images: np.ndarray  # (n, 28, 28)
    labels: np.ndarray  # (n,) int64
    probabilities: np.ndarray  # (n, 10) challenger
    pred: np.ndarray
    conf: np.ndarray
    champion_probabilities: np.ndarray | None
    champion_pred: np.ndarray | None
    champion_conf: np.ndarray | None


def _scores(name: str, array: np.ndarray, n: int) -> np.ndarray:
    scores = np.asarray(array, dtype=np.float64)
    if scores.shape != (n, N_CLASSES):
        raise ValueError(f"{name} must have shape ({n}, {N_CLASSES}), got {scores.shape}")
    return scores


def holdout_arrays(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, champion: np.ndarray | None) -> Holdout:
    """Check that the arrays describe the same ``n`` digits and derive each model's predictions.

    Raises:
        ValueError: If a shape disagrees with the number of labels.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n = len(labels)
    probs = _scores("probabilities", probs, n)
    champion = None if champion is None else _scores("champion_probabilities", champion, n)
    images = np.asarray(images)
    if images.size != n * 28 * 28:
        raise ValueError(f"expected {n} images of 28x28 pixels, got array of shape {images.shape}")
    return Holdout(
        # Flattened (n, 784) rows are accepted too: that is how the CSV inputs store them.
        images=images.reshape(n, 28, 28),
        labels=labels,
        probabilities=probs,
        pred=probs.argmax(axis=1),
        conf=probs.max(axis=1),
        champion_probabilities=champion,
        champion_pred=None if champion is None else champion.argmax(axis=1),
        champion_conf=None if champion is None else champion.max(axis=1),
    )


def _disagreements(h: Holdout) -> np.ndarray:
    """Holdout indices where the two models disagree: the challenger's new mistakes first, then its fixes,
    then digits both got wrong; most confident first within each group."""
    if h.champion_pred is None:
        return np.zeros(0, dtype=np.int64)
    index = np.flatnonzero(h.pred != h.champion_pred)
    champion_right, right = h.champion_pred[index] == h.labels[index], h.pred[index] == h.labels[index]
    group = np.where(champion_right, 0, np.where(right, 1, 2))
    return index[np.lexsort((-h.conf[index], group))]


def _tiles(h: Holdout, picked: np.ndarray, cache: dict[int, str]) -> list[dict[str, Any]]:
    tiles = []
    for i in picked.tolist():
        if i not in cache:  # a digit can sit in two galleries; encode it once
            cache[i] = png_data_uri(digit_tile_png(h.images[i]))
        tile = {"src": cache[i], "index": i, "label": int(h.labels[i]), "pred": int(h.pred[i]),
                "confidence": round(float(h.conf[i]), 4), "conf": f"{h.conf[i]:.1%}",
                "right": bool(h.pred[i] == h.labels[i])}  # fmt: skip
        if h.champion_pred is not None and h.champion_conf is not None:
            tile |= {"champion_pred": int(h.champion_pred[i]),
                     "champion_confidence": round(float(h.champion_conf[i]), 4),
                     "champion_conf": f"{h.champion_conf[i]:.1%}",
                     "champion_right": bool(h.champion_pred[i] == h.labels[i])}  # fmt: skip
        tiles.append(tile)
    return tiles


def galleries(
    h: Holdout, sample_size: int, error_size: int, disagreement_size: int, seed: int
) -> tuple[dict[str, Any], dict[str, bytes], dict[str, Any]]:
    """The three galleries as HTML tiles, as stored PNG grids, and as the indices behind them."""
    n = len(h.labels)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(max(sample_size, 0), n), replace=False))
    wrong = np.flatnonzero(h.pred != h.labels)
    # Confident mistakes are the most telling (label noise, systematic confusions), so they lead.
    errors = wrong[np.argsort(-h.conf[wrong], kind="stable")][: max(error_size, 0)]
    disagree = _disagreements(h)
    shown = disagree[: max(disagreement_size, 0)]

    cache: dict[int, str] = {}
    view: dict[str, Any] = {name: _tiles(h, picked, cache) for name, picked in
                            (("samples", sample), ("errors", errors), ("disagreements", shown))}  # fmt: skip
    view |= {"n_wrong": f"{len(wrong):,}", "counts": None}
    charts = {
        "holdout_samples.png": digit_grid_png(
            h.images[sample], h.labels[sample], h.pred[sample], f"{len(sample)} random holdout digits", h.conf[sample]
        )
    }
    if len(errors):
        charts["misclassified.png"] = digit_grid_png(
            h.images[errors], h.labels[errors], h.pred[errors], "Most confident errors", h.conf[errors]
        )
    if h.champion_pred is not None:
        right, champion_right = h.pred == h.labels, h.champion_pred == h.labels
        view["counts"] = {
            "total": f"{len(disagree):,}",
            "challenger_only": f"{int((right & ~champion_right).sum()):,}",
            "champion_only": f"{int((champion_right & ~right).sum()):,}",
            "both_wrong": f"{int((~right & ~champion_right & (h.pred != h.champion_pred)).sum()):,}",
        }
        if len(shown):
            charts["disagreements.png"] = digit_grid_png(
                h.images[shown], h.labels[shown], h.pred[shown], "Challenger vs champion", h.conf[shown],
                champion_pred=h.champion_pred[shown],
            )  # fmt: skip
    keep = ("index", "label", "pred", "confidence", "champion_pred", "champion_confidence")
    figures = {
        stem: [{key: tile[key] for key in keep if key in tile} for tile in view[name]]
        for stem, name in (
            ("holdout_samples", "samples"),
            ("misclassified", "errors"),
            ("disagreements", "disagreements"),
        )
    }
    return view, charts, figures
