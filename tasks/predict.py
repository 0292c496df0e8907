"""Predict digits for images (PNG/JPEG of any size) and CSV rows with a published model."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.csv_digits import parse_csv_rows
from tasks.model import predict_probabilities

DIGIT_BOX = 20  # MNIST digits fit a 20×20 box centred by mass in the 28×28 frame
FRAME = 28
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}


class PredictInputError(Exception):
    """An input file that cannot be read as a digit image or CSV rows."""


@dataclass(frozen=True)
class Prediction:
    name: str
    label: int
    confidence: float


def image_to_mnist(data: bytes) -> np.ndarray:
    """Any picture of one digit → a 28×28 uint8 MNIST-style digit (white ink on black, centred by mass)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            grey = np.asarray(opened.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise PredictInputError(f"not a readable image ({error})") from None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 127:  # dark ink on a light background, as people draw: MNIST is the reverse
        grey = 255.0 - grey
    grey[grey < 0.1 * max(float(grey.max()), 1.0)] = 0.0  # paper texture and JPEG noise are not ink
    rows, cols = np.nonzero(grey)
    if len(rows) == 0:
        return np.zeros((FRAME, FRAME), np.uint8)
    crop = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = DIGIT_BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    frame = np.zeros((FRAME, FRAME), np.float32)
    total = small.sum() or 1.0
    centre_y = (small.sum(axis=1) * np.arange(small.shape[0])).sum() / total
    centre_x = (small.sum(axis=0) * np.arange(small.shape[1])).sum() / total
    top = int(np.clip(round(FRAME / 2 - centre_y), 0, FRAME - small.shape[0]))
    left = int(np.clip(round(FRAME / 2 - centre_x), 0, FRAME - small.shape[1]))
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.clip(frame * (255.0 / max(float(frame.max()), 1.0)), 0, 255).astype(np.uint8)


def csv_rows_to_images(data: bytes) -> tuple[np.ndarray, list[int]]:
    """CSV rows in the training layout (label first) or without the label (784 pixels)."""
    text = data.decode("utf-8-sig", errors="replace")
    first = next((line for line in text.splitlines() if line.strip()), "")
    if first.count(",") == 783:  # pixels only: give each row a placeholder label so one parser serves both
        data = "\n".join(("0," + line if line.strip() else line) for line in text.splitlines()).encode()
    rows = parse_csv_rows(data)
    if rows.problems:
        raise PredictInputError(rows.problems[0].message)
    return rows.images, [int(r) for r in rows.rows]


def load_inputs(path: Path) -> tuple[np.ndarray, list[str]]:
    """The digits in one file and a display name for each."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PredictInputError(f"cannot read: {error.strerror or error}") from None
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return image_to_mnist(data)[None], [str(path)]
    if suffix in {".csv", ".gz"}:
        from tasks.parse import InputRejected, maybe_gunzip

        try:
            images, rows = csv_rows_to_images(maybe_gunzip(data, path.name))
        except InputRejected as error:
            raise PredictInputError(error.reason) from None
        return images, [f"{path}:row {row}" for row in rows]
    raise PredictInputError(f"unsupported file type {suffix or '(none)'}: use PNG, JPEG or CSV")


def predict(model: Any, images: np.ndarray, names: list[str]) -> list[Prediction]:
    probabilities = predict_probabilities(model, images)
    return [Prediction(name, int(p.argmax()), float(p.max())) for name, p in zip(names, probabilities, strict=True)]
