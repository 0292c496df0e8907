"""Perturbed copies of the holdout, for the gate's robustness rule: ±2-pixel shifts and light Gaussian noise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SHIFT_PIXELS = 2
NOISE_SIGMA = 20.0  # on the 0–255 scale: visible speckle, digits still obvious to a person
SHIFTS = ((SHIFT_PIXELS, 0), (-SHIFT_PIXELS, 0), (0, SHIFT_PIXELS), (0, -SHIFT_PIXELS))


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images moved by (dy, dx) pixels, the uncovered border filled with background (0)."""
    out = np.zeros_like(images)
    height, width = images.shape[1:3]
    src_y, dst_y = slice(max(0, -dy), height - max(0, dy)), slice(max(0, dy), height - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), width - max(0, dx)), slice(max(0, dx), width - max(0, -dx))
    out[:, dst_y, dst_x] = images[:, src_y, src_x]
    return out


def noisy(images: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, images.shape)
    return np.clip(images.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def predict_with_robustness(
    predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, dict[str, float]]:
    """Probabilities on the clean holdout, and accuracy clean, averaged over the four 2-pixel shifts, and under noise.

    Every variant goes through `predict` in one call: one pass of the model's batching instead of six.

    Args:
        predict: maps uint8 images (N, 28, 28) to class probabilities (N, 10).
        images: the holdout images.
        labels: their true digits.
        seed: seeds the noise, so champion and challenger see the very same noisy images.
    """
    variants = [images, *(shifted(images, dy, dx) for dy, dx in SHIFTS), noisy(images, seed)]
    probabilities = predict(np.concatenate(variants))
    correct = (probabilities.argmax(axis=1) == np.tile(labels, len(variants))).reshape(len(variants), len(images))
    accuracies = {
        "clean": float(correct[0].mean()),
        "shift": float(correct[1 : 1 + len(SHIFTS)].mean()),
        "noise": float(correct[-1].mean()),
    }
    return probabilities[: len(images)], accuracies


def robustness_accuracies(
    predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """Accuracy on the clean holdout, averaged over the four 2-pixel shifts, and under noise."""
    return predict_with_robustness(predict, images, labels, seed)[1]
