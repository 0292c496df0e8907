"""Inputs as producers write them, for the data tests (imported by name: tests/data is on sys.path)."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np

from tasks.manifest import MANIFEST_KEY
from tasks.store import Store


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like images: light strokes on a black background with a black frame, and balanced labels.

    Unlike uniform noise they pass the image checks (noise has a grey border, i.e. looks inverted).
    """
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    density = rng.uniform(0.15, 0.35, (n, 1, 1))
    ink = rng.random((n, 16, 16)) < density
    images[:, 6:22, 6:22] = np.where(ink, rng.integers(128, 256, (n, 16, 16)), rng.integers(0, 40, (n, 16, 16)))
    return images, (np.arange(n) % 10).astype(np.uint8)[rng.permutation(n)]


def idx_pair(images: np.ndarray, labels: np.ndarray) -> tuple[bytes, bytes]:
    image_bytes = struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes()
    return image_bytes, struct.pack(">II", 2049, len(labels)) + labels.tobytes()


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def entries_by_key(store: Store) -> dict[str, dict[str, Any]]:
    return {e["key"]: e for e in json.loads(store.get(MANIFEST_KEY))["entries"]}
