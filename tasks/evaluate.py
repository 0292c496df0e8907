"""Holdout metrics from labels and predicted probabilities (scikit-learn), as plain JSON-ready values."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

from tasks.model import NUM_CLASSES

DIGITS = list(range(NUM_CLASSES))


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, log loss, per-class precision/recall/F1/support and the 10×10 confusion matrix.

    Args:
        labels: (N,) true digits.
        probabilities: (N, 10) predicted class probabilities.
    """
    if len(labels) == 0:
        raise ValueError("cannot evaluate on an empty holdout")
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=DIGITS, zero_division=0)
    per_class = [
        {
            "digit": digit,
            "precision": float(precision[digit]),
            "recall": float(recall[digit]),
            "f1": float(f1[digit]),
            "support": int(support[digit]),
        }
        for digit in DIGITS
    ]
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(log_loss(labels, probabilities, labels=DIGITS)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(labels, predicted, labels=DIGITS).astype(int).tolist(),
    }
