"""The final rules every parsed input must pass."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.validate import (
    DigitArrays,
    InputRejected,
    check_digit_arrays,
    label_range_problem,
    pixel_range_problem,
    require_valid,
)


def valid(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 28, 28), np.uint8), (np.arange(n) % 10).astype(np.uint8)


def test_valid_arrays_have_no_problems() -> None:
    assert check_digit_arrays(*valid()) == []


@pytest.mark.parametrize(
    ("images", "labels", "problems"),
    [
        (np.zeros((4, 28, 27), np.uint8), None, ["images have shape (4, 28, 27), expected (N, 28, 28)"]),
        (np.zeros((4, 784), np.uint8), None, ["images have shape (4, 784), expected (N, 28, 28)"]),
        (np.zeros((4, 28, 28), np.float32), None, ["images have dtype float32, expected uint8"]),
        (None, np.zeros((4, 1), np.uint8), ["labels have shape (4, 1), expected (N,)"]),
        (None, np.zeros(4, np.int64), ["labels have dtype int64, expected uint8"]),
        (None, np.zeros(3, np.uint8), ["4 images but 3 labels"]),
        (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), ["no digits (0 images)"]),
        (
            None,
            np.array([1, 12, 3, 10], np.uint8),
            ["2 of 4 labels outside 0–9 (first at index 1: 12; values: 10, 12)"],
        ),
        (
            np.zeros((4, 28, 28), np.int16),
            np.array([1, -1, 2, 3]),
            [
                "images have dtype int16, expected uint8",
                "labels have dtype int64, expected uint8",
                "1 of 4 labels outside 0–9 (first at index 1: -1; values: -1)",
            ],
        ),
    ],
)
def test_each_problem_is_one_line(images: np.ndarray | None, labels: np.ndarray | None, problems: list[str]) -> None:
    good_images, good_labels = valid()
    found = check_digit_arrays(good_images if images is None else images, good_labels if labels is None else labels)
    assert found == problems


def test_not_arrays() -> None:
    assert check_digit_arrays([1], np.zeros(1, np.uint8)) == ["expected numpy arrays, got list and ndarray"]  # type: ignore[arg-type]


def test_require_valid_returns_c_contiguous_arrays() -> None:
    images, labels = valid(6)
    images[:, 3, 5] = np.arange(6)
    strided = DigitArrays(np.asfortranarray(images), labels[::-1].copy()[::-1])
    assert not strided.images.flags.c_contiguous and not strided.labels.flags.c_contiguous
    checked = require_valid(strided)
    assert checked.images.flags.c_contiguous and checked.labels.flags.c_contiguous
    np.testing.assert_array_equal(checked.images, images)
    np.testing.assert_array_equal(checked.labels, labels)
    assert len(checked) == 6


def test_require_valid_raises_with_every_problem() -> None:
    with pytest.raises(InputRejected) as info:
        require_valid(DigitArrays(np.zeros((2, 28, 28), np.float64), np.array([3, 99], np.uint8)), where="train")
    assert info.value.reason == "train: images have dtype float64, expected uint8 (+1 more)"
    assert str(info.value) == info.value.reason
    assert info.value.errors == [
        "images have dtype float64, expected uint8",
        "1 of 2 labels outside 0–9 (first at index 1: 99; values: 99)",
    ]


def test_input_rejected_defaults() -> None:
    error = InputRejected("empty file")
    assert (str(error), error.reason, error.errors) == ("empty file", "empty file", [])


def test_range_helpers_locate_the_first_bad_value() -> None:
    assert label_range_problem(np.arange(10)) is None
    labels = np.array([0, 5, 42, 7, -3, 11, 12, 13, 14, 15])
    assert label_range_problem(labels) == (
        "7 of 10 labels outside 0–9 (first at index 2: 42; values: -3, 11, 12, 13, 14, …)"
    )
    images = np.zeros((3, 28, 28), np.int32)
    assert pixel_range_problem(images) is None
    images[2, 5, 9], images[2, 6, 0] = 256, -1
    assert pixel_range_problem(images) == (
        "2 pixels outside 0–255 (first: image 2 row 5 column 9 is 256; values: -1, 256)"
    )
