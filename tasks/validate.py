"""Final rules every parsed input must pass, whatever its format.

The shared types `DigitArrays` and `InputRejected` live here rather than in `tasks.parse` because the parsers
call these rules: defining them in the lower module keeps the import graph acyclic. `tasks.parse` re-exports
both, so `from tasks.parse import DigitArrays, InputRejected` is the usual spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
MAX_ERRORS = 20
MAX_DECOMPRESSED_BYTES = 1 << 30  # what one input may grow to once unpacked


class InputRejected(Exception):
    """A whole input that cannot be used.

    Attributes:
        reason: one line a person can act on; also `str(exc)`.
        errors: details, one line each, at most about `MAX_ERRORS`.
    """

    def __init__(self, reason: str, errors: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = list(errors or [])

    def __str__(self) -> str:
        return self.reason


# eq=False: the generated __eq__ would compare arrays element-wise and fail on truth testing.
@dataclass(frozen=True, eq=False)
class DigitArrays:
    """Digits ready for training.

    Attributes:
        images: (N, 28, 28) uint8, C-contiguous.
        labels: (N,) uint8 in 0–9.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _values(values: np.ndarray, limit: int = 5) -> str:
    distinct = np.unique(values)
    shown = ", ".join(str(v) for v in distinct[:limit].tolist())
    return shown + (", …" if distinct.size > limit else "")


def label_range_problem(labels: np.ndarray) -> str | None:
    """Describes labels outside 0–9, or returns None when all are digits.

    Works on any integer dtype, so callers check before casting to uint8 (a cast would wrap 256 to 0).
    The index is the position in `labels`, which is the digit's position in the input.
    """
    bad = (labels < 0) | (labels > 9)
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return None
    first = int(np.flatnonzero(bad)[0])
    return (
        f"{n_bad:,} of {labels.size:,} labels outside 0–9 "
        f"(first at index {first:,}: {labels[first]}; values: {_values(labels[bad])})"
    )


def pixel_range_problem(images: np.ndarray) -> str | None:
    """Describes pixels outside 0–255 in an integer (N, 28, 28) array, or returns None."""
    bad = (images < 0) | (images > 255)
    n_bad = int(np.count_nonzero(bad))
    if n_bad == 0:
        return None
    digit, row, col = (int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), images.shape))
    return (
        f"{n_bad:,} pixels outside 0–255 (first: image {digit:,} row {row} column {col} "
        f"is {images[digit, row, col]}; values: {_values(images[bad])})"
    )


def check_digit_arrays(images: np.ndarray, labels: np.ndarray) -> list[str]:
    """Returns every problem with a pair of arrays as one line each; an empty list means valid."""
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        return [f"expected numpy arrays, got {type(images).__name__} and {type(labels).__name__}"]
    problems: list[str] = []
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        problems.append(f"images have shape {images.shape}, expected (N, 28, 28)")
    if images.dtype != np.uint8:
        problems.append(f"images have dtype {images.dtype}, expected uint8")
    if labels.ndim != 1:
        problems.append(f"labels have shape {labels.shape}, expected (N,)")
    if labels.dtype != np.uint8:
        problems.append(f"labels have dtype {labels.dtype}, expected uint8")
    n_images = images.shape[0] if images.ndim else 0
    n_labels = labels.shape[0] if labels.ndim else 0
    if n_images != n_labels:
        problems.append(f"{n_images:,} images but {n_labels:,} labels")
    elif n_images == 0:
        problems.append("no digits (0 images)")
    if np.issubdtype(labels.dtype, np.integer) and (problem := label_range_problem(labels)):
        problems.append(problem)
    return problems


def require_valid(arrays: DigitArrays, *, where: str = "") -> DigitArrays:
    """Returns `arrays` with C-contiguous storage, or raises when `check_digit_arrays` finds a problem.

    Args:
        arrays: the parsed digits.
        where: prefixed to the reason (e.g. "train") so a multi-part input says which part failed.

    Raises:
        InputRejected: the first problem as the reason, all of them as errors.
    """
    problems = check_digit_arrays(arrays.images, arrays.labels)
    if problems:
        prefix = f"{where}: " if where else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputRejected(f"{prefix}{problems[0]}{more}", problems[:MAX_ERRORS])
    return DigitArrays(np.ascontiguousarray(arrays.images), np.ascontiguousarray(arrays.labels))
