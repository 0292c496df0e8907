"""How far a classifier's confidence can be trusted: reliability bins and expected calibration error (ECE).

A model is calibrated when, among the digits it predicts with 90% confidence, about 90% are right. The
holdout is split into equal-width bins of top-class confidence; each bin's accuracy is compared with its
mean confidence, and the ECE is the average gap weighted by how many digits fall in each bin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_BINS = 15  # the usual choice since Guo et al. (2017), so figures compare with the literature


def calibration_summary(labels: np.ndarray, probabilities: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Reliability bins and calibration errors of predicted probabilities on labelled data.

    Args:
        labels: ``(n,)`` true classes.
        probabilities: ``(n, k)`` predicted class probabilities; the prediction is the argmax and its
            probability the confidence.
        n_bins: Number of equal-width confidence bins over ``[0, 1]``.

    Returns:
        A JSON-ready dict: ``ece`` (expected calibration error, a fraction), ``mce`` (the largest gap of any
        non-empty bin), ``n`` (digits scored), ``n_bins`` and ``bins``, one per bin in ascending order, each
        ``{"lower", "upper", "confidence", "accuracy", "count"}``. A bin covers ``(lower, upper]`` (the
        first also holds a confidence of exactly 0); ``confidence`` and ``accuracy`` are the bin's means, or
        ``None`` for an empty bin.

    Raises:
        ValueError: If the shapes disagree, there is nothing to score, or ``n_bins`` is below 1.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(labels):
        raise ValueError(f"probabilities must have shape ({len(labels)}, k), got {probabilities.shape}")
    if len(labels) == 0:
        raise ValueError("cannot measure calibration on no data")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")

    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts a confidence equal to an edge in the bin below it, giving (lower, upper] bins;
    # the clip catches exactly 0 and values a rounding hair above 1.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    confidence_sums = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sums = np.bincount(index, weights=correct, minlength=n_bins)

    gaps = np.abs(correct_sums - confidence_sums)  # count × |accuracy − confidence| per bin
    filled = counts > 0
    bins = [
        {
            "lower": float(edges[i]),
            "upper": float(edges[i + 1]),
            "confidence": float(confidence_sums[i] / counts[i]) if filled[i] else None,
            "accuracy": float(correct_sums[i] / counts[i]) if filled[i] else None,
            "count": int(counts[i]),
        }
        for i in range(n_bins)
    ]
    return {
        "ece": float(gaps.sum() / len(labels)),
        "mce": float((gaps[filled] / counts[filled]).max()),
        "n": len(labels),
        "n_bins": n_bins,
        "bins": bins,
    }
