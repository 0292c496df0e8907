"""Parsing of landing-zone inputs: CSV, IDX and NPZ, plain and gzip, and every way they are refused."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tasks import csv_digits
from tasks.parse import (
    DigitArrays,
    InputRejected,
    idx_images_candidates,
    idx_labels_candidates,
    input_kind,
    maybe_gunzip,
    parse_csv,
    parse_csv_rows,
    parse_idx_pair,
    parse_input,
    parse_npz,
)

MNIST = Path(__file__).resolve().parents[3] / "shared/data/mnist"
PIXEL_HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))
GRID_HEADER = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
PANDAS_HEADER = ",".join(str(i) for i in range(785))


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, :4] = 0  # real digits have blank borders: keeps some short fields next to long ones
    return images, rng.integers(0, 10, size=n, dtype=np.uint8)


def csv_lines(images: np.ndarray, labels: np.ndarray) -> list[str]:
    return [
        ",".join(map(str, [int(label), *image.ravel().tolist()])) for image, label in zip(images, labels, strict=True)
    ]


def csv_bytes(images: np.ndarray, labels: np.ndarray, header: str | None = None, newline: str = "\n") -> bytes:
    lines = ([header] if header else []) + csv_lines(images, labels)
    return (newline.join(lines) + newline).encode()


def with_field(n_rows: int, row: int, field: int, value: str, header: str | None = None) -> bytes:
    """A valid CSV of n_rows whose 1-based data `row` has column `field` (0 = label) set to `value`."""
    lines = csv_lines(*digits(n_rows))
    fields = lines[row - 1].split(",")
    fields[field] = value
    lines[row - 1] = ",".join(fields)
    return ("\n".join(([header] if header else []) + lines) + "\n").encode()


def rejected(func: Callable[..., object], *args: object, **kwargs: object) -> InputRejected:
    with pytest.raises(InputRejected) as info:
        func(*args, **kwargs)
    assert str(info.value) == info.value.reason
    return info.value


def assert_same(arrays: DigitArrays, images: np.ndarray, labels: np.ndarray) -> None:
    assert arrays.images.dtype == np.uint8 and arrays.labels.dtype == np.uint8
    assert arrays.images.flags.c_contiguous
    np.testing.assert_array_equal(arrays.images, images)
    np.testing.assert_array_equal(arrays.labels, labels)


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("incoming/a.csv", "csv"),
        ("incoming/DIGITS.CSV.GZ", "csv"),
        ("x/train-images-idx3-ubyte", "idx-images"),
        ("x/T10K-IMAGES-IDX3-UBYTE.GZ", "idx-images"),
        ("t10k-images.idx3-ubyte", "idx-images"),
        ("x/train-labels-idx1-ubyte.gz", "idx-labels"),
        ("mnist.NPZ", "npz"),
        ("notes.txt", None),
        ("a.csv.zip", None),
        ("a.npz.gz", None),
        ("csv", None),
        ("train-images-idx3-ubyte.zip", None),
    ],
)
def test_input_kind(key: str, kind: str | None) -> None:
    assert input_kind(key) == kind


@pytest.mark.parametrize(
    ("images_key", "labels_keys"),
    [
        ("a/train-images-idx3-ubyte.gz", ["a/train-labels-idx1-ubyte.gz", "a/train-labels-idx1-ubyte"]),
        ("a/b/train-images-idx3-ubyte", ["a/b/train-labels-idx1-ubyte", "a/b/train-labels-idx1-ubyte.gz"]),
        ("T10K-IMAGES-IDX3-UBYTE.GZ", ["T10K-LABELS-IDX1-UBYTE.GZ", "T10K-LABELS-IDX1-UBYTE"]),
        ("Batch7-Images-idx3-ubyte", ["Batch7-labels-idx1-ubyte", "Batch7-labels-idx1-ubyte.gz"]),
        ("t10k-images.idx3-ubyte", ["t10k-labels.idx1-ubyte", "t10k-labels.idx1-ubyte.gz"]),
        (
            "images-idx3/digits-idx3-ubyte",
            ["images-idx3/digits-idx1-ubyte", "images-idx3/digits-idx1-ubyte.gz"],
        ),
        ("a/digits.csv", []),
    ],
)
def test_idx_labels_candidates(images_key: str, labels_keys: list[str]) -> None:
    assert idx_labels_candidates(images_key) == labels_keys


def test_idx_images_candidates_is_the_inverse() -> None:
    assert idx_images_candidates("a/train-labels-idx1-ubyte.gz")[0] == "a/train-images-idx3-ubyte.gz"


def test_unsupported_extension() -> None:
    error = rejected(parse_input, "incoming/digits.txt", b"7,0,0\n")
    assert "unsupported file type" in error.reason and "digits.txt" in error.reason


# ------------------------------------------------------------------------------------------ CSV: accepted


def test_csv_without_header() -> None:
    images, labels = digits(30)
    rows = parse_csv_rows(csv_bytes(images, labels))
    assert rows.header is None and rows.problems == []
    np.testing.assert_array_equal(rows.rows, np.arange(1, 31))
    assert_same(parse_csv(csv_bytes(images, labels)), images, labels)


@pytest.mark.parametrize("header", [PIXEL_HEADER, GRID_HEADER, PANDAS_HEADER], ids=["pixel0", "1x1", "0..784"])
def test_csv_with_header(header: str) -> None:
    images, labels = digits(12)
    rows = parse_csv_rows(csv_bytes(images, labels, header))
    assert rows.header == header
    assert_same(DigitArrays(rows.images, rows.labels), images, labels)


@pytest.mark.parametrize(
    "transform",
    [
        lambda text: text.replace("\n", "\r\n"),
        lambda text: "\ufeff" + text,
        lambda text: text + "\n\n  \n",
        lambda text: text.replace(",", " , ").replace("\n", " \n"),
        lambda text: text.replace(",", "\t,"),
        lambda text: "".join(f'"{line.replace(",", chr(34) + "," + chr(34))}"\n' for line in text.splitlines()),
        lambda text: "\ufeff" + PIXEL_HEADER + "\r\n" + text.replace("\n", "\r\n"),
        lambda text: text.rstrip("\n"),
    ],
    ids=["crlf", "bom", "blank-tail", "spaces", "tabs", "quoted", "bom-header-crlf", "no-final-newline"],
)
def test_csv_tolerated_variants(transform: Callable[[str], str]) -> None:
    images, labels = digits(9)
    text = transform(csv_bytes(images, labels).decode())
    assert_same(parse_csv(text.encode("utf-8")), images, labels)


def test_csv_gz_with_upper_case_extension() -> None:
    images, labels = digits(20)
    parts = parse_input("incoming/batch/DIGITS.CSV.GZ", gzip.compress(csv_bytes(images, labels, PIXEL_HEADER)))
    assert list(parts) == ["all"]
    assert_same(parts["all"], images, labels)


def test_csv_rows_read_one_by_one_keep_their_place_across_chunks() -> None:
    n = 2 * csv_digits._CHUNK_LINES + 5
    images, labels = np.zeros((n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)
    images[:, 14, 14] = np.arange(n) % 256
    lines = csv_lines(images, labels)
    odd_rows = [1, csv_digits._CHUNK_LINES, csv_digits._CHUNK_LINES + 1, n]  # unusual spellings the row parser reads
    for row in odd_rows:
        fields = lines[row - 1].split(",")
        fields[0], fields[1] = f"+{fields[0]}", "0000"
        lines[row - 1] = ",".join(fields)
    rows = parse_csv_rows(("\n".join(lines) + "\n").encode())
    assert rows.problems == []
    np.testing.assert_array_equal(rows.rows, np.arange(1, n + 1))
    assert_same(DigitArrays(rows.images, rows.labels), images, labels)


def test_csv_rows_report_bad_rows_and_keep_good_ones() -> None:
    images, labels = digits(6)
    lines = csv_lines(images, labels)
    lines[1] = lines[1].replace(",", ",x,", 1)  # row 2: one field too many
    lines.insert(3, "")  # a blank line keeps its number: the rows after it are 5, 6, 7
    lines[5] = "12" + lines[5][1:]  # row 6: label 12
    rows = parse_csv_rows(("\n".join([PIXEL_HEADER, *lines]) + "\n").encode())
    assert [p.row for p in rows.problems] == [2, 6]
    assert rows.problems[0].message == "row 2: 786 values, expected 785 (label + 784 pixels)"
    assert rows.problems[1].message == "row 6: label is 12, outside 0–9"
    assert rows.problems[1].raw == lines[5]
    np.testing.assert_array_equal(rows.rows, [1, 3, 5, 7])
    np.testing.assert_array_equal(rows.labels, labels[[0, 2, 3, 5]])
    np.testing.assert_array_equal(rows.images, images[[0, 2, 3, 5]])
    assert rows.n_rows == 6


# ------------------------------------------------------------------------------------------ CSV: refused


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"\n \r\n\n", "empty file"),
        (b"\xef\xbb\xbf", "empty file"),
        ((PIXEL_HEADER + "\n").encode(), "header only, no data rows"),
        ((GRID_HEADER + "\r\n\r\n").encode(), "header only, no data rows"),
        (bytes(range(256)) * 4, "not a CSV text file (binary data)"),
        (b"7,\xff\xfe,0\n", "not a CSV text file (binary data)"),
        (gzip.compress(b"7,0\n"), "not a CSV text file (binary data; it looks like gzip data)"),
        (b"label,pixel0,pixel1\n7,0,0\n", "header has 3 columns, expected 785 (label + 784 pixels)"),
    ],
)
def test_csv_whole_file_refused(data: bytes, reason: str) -> None:
    assert rejected(parse_csv, data).reason == reason


def test_csv_header_with_label_last_refused() -> None:
    header = ",".join(f"pixel{i}" for i in range(784)) + ",label"
    assert "column 785 'label': the label must be the first column" in rejected(parse_csv, header.encode()).reason


@pytest.mark.parametrize(
    ("row", "field", "value", "message"),
    [
        (2, 6, "abc", "row 2: pixel 5 is 'abc', not an integer 0–255"),
        (12, 6, "3.5", "row 12: pixel 5 is '3.5', not an integer 0–255"),
        (12, 6, "3.0", "row 12: pixel 5 is '3.0', not an integer 0–255"),
        (1207, 4, "300", "row 1,207: pixel 3 is 300, outside 0–255"),
        (3, 4, "-1", "row 3: pixel 3 is -1, outside 0–255"),
        (4, 0, "12", "row 4: label is 12, outside 0–9"),
        (4, 0, "seven", "row 4: label is 'seven', not an integer 0–9"),
        (9, 18, "", "row 9: pixel 17 is missing"),
        (9, 18, "  ", "row 9: pixel 17 is missing"),
        (5, 0, "", "row 5: label is missing"),
        (6, 1, "1 2", "row 6: pixel 0 is '1 2', not an integer 0–255"),
    ],
)
def test_csv_bad_value_rejects_the_file(row: int, field: int, value: str, message: str) -> None:
    n_rows = max(row, 20)
    error = rejected(parse_csv, with_field(n_rows, row, field, value))
    assert error.reason == f"1 bad row of {n_rows:,}; first: {message}"
    assert error.errors == [message]


def test_csv_row_numbers_do_not_count_the_header() -> None:
    error = rejected(parse_csv, with_field(5, 2, 4, "300", header=PIXEL_HEADER))
    assert error.errors == ["row 2: pixel 3 is 300, outside 0–255"]


def test_csv_wrong_column_count() -> None:
    lines = csv_lines(*digits(10))
    lines[7] = lines[7].rsplit(",", 2)[0]  # row 8 loses two pixels
    error = rejected(parse_csv, "\n".join(lines).encode())
    assert error.reason == "1 bad row of 10; first: row 8: 783 values, expected 785 (label + 784 pixels)"


def test_csv_other_separator_is_named() -> None:
    text = "\n".join(line.replace(",", ";") for line in csv_lines(*digits(3)))
    assert rejected(parse_csv, text.encode()).reason == "values are separated by ';', expected ','"
    tabbed = PIXEL_HEADER.replace(",", "\t") + "\n" + text.replace(";", "\t")
    assert rejected(parse_csv, tabbed.encode()).reason == "values are separated by '\\t', expected ','"


def test_csv_counts_every_bad_row_and_caps_the_details() -> None:
    lines = csv_lines(*digits(40))
    for i in range(1, 40, 2):  # rows 2, 4, …, 40
        lines[i] = "10" + lines[i][1:]
    lines[0] = lines[0].replace(",", ",999,", 1).rsplit(",", 1)[0]  # row 1: pixel 0 is 999
    error = rejected(parse_csv, "\n".join(lines).encode())
    assert error.reason == "21 bad rows of 40; first: row 1: pixel 0 is 999, outside 0–255"
    assert len(error.errors) == 21 and error.errors[-1] == "… and 1 more"
    assert error.errors[1] == "row 2: label is 10, outside 0–9"


def test_csv_row_with_several_problems_reports_its_first() -> None:
    lines = with_field(3, 2, 3, "-5").decode().splitlines()
    lines[1] = lines[1].replace(",", ",,", 1).rsplit(",", 1)[0]  # pixel 0 empty as well as pixel 3 negative
    error = rejected(parse_csv, "\n".join(lines).encode())
    assert error.errors == ["row 2: pixel 0 is missing"]


def test_csv_huge_and_non_ascii_numbers() -> None:
    assert rejected(parse_csv, with_field(2, 1, 2, "9" * 5000)).errors == [
        f"row 1: pixel 1 is '{'9' * 20}…', not an integer 0–255"
    ]
    assert rejected(parse_csv, with_field(2, 2, 0, "٣")).errors == ["row 2: label is '٣', not an integer 0–9"]


# ------------------------------------------------------------------------------------------ gzip


def test_truncated_gzip() -> None:
    data = gzip.compress(csv_bytes(*digits(50)))
    error = rejected(parse_input, "in/digits.csv.gz", data[: len(data) // 2])
    assert error.reason.startswith("truncated gzip: digits.csv.gz")


def test_gz_name_without_gzip_data() -> None:
    error = rejected(parse_input, "in/digits.csv.gz", csv_bytes(*digits(2)))
    assert error.reason == "digits.csv.gz is named .gz but is not gzip data"


def test_corrupt_gzip() -> None:
    data = bytearray(gzip.compress(csv_bytes(*digits(5))))
    data[-8] ^= 0xFF  # the CRC of the content
    assert rejected(maybe_gunzip, bytes(data), "a.csv.gz").reason.startswith("corrupt gzip data in a.csv.gz")


def test_gzip_bomb_is_capped() -> None:
    bomb = gzip.compress(b"0" * 5_000_000)
    error = rejected(maybe_gunzip, bomb, "x/a.csv.gz", max_bytes=1_000_000)
    assert "more than 1,000,000 bytes" in error.reason
    assert len(maybe_gunzip(bomb, "x/a.csv.gz", max_bytes=5_000_000)) == 5_000_000


def test_gzip_members_and_padding() -> None:
    data = gzip.compress(b"ab") + gzip.compress(b"cd") + b"\0" * 8
    assert maybe_gunzip(data, "a.GZ") == b"abcd"
    assert maybe_gunzip(b"not compressed", "a.csv") == b"not compressed"
    assert "non-gzip data after" in rejected(maybe_gunzip, gzip.compress(b"ab") + b"junk", "a.gz").reason


# ------------------------------------------------------------------------------------------ IDX


def idx_images(images: np.ndarray, magic: int = 2051) -> bytes:
    return struct.pack(">4I", magic, images.shape[0], *images.shape[1:]) + images.tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">2I", 2049, labels.size) + labels.tobytes()


def test_idx_pair_plain_and_gz() -> None:
    images, labels = digits(25)
    plain = parse_input("in/train-images-idx3-ubyte", idx_images(images), idx_labels(labels))
    assert_same(plain["all"], images, labels)
    packed = parse_input(
        "in/train-images-idx3-ubyte.gz", gzip.compress(idx_images(images)), gzip.compress(idx_labels(labels))
    )
    assert list(packed) == ["all"]
    assert_same(packed["all"], images, labels)
    assert packed["all"].images.flags.writeable


@pytest.mark.parametrize(
    ("images", "labels", "reason"),
    [
        (idx_labels(np.zeros(3, np.uint8)), None, "not an IDX images file: it is an IDX labels file"),
        (b"\x12\x34\x56\x78" + bytes(12), None, "not an IDX images file: its magic number is 0x12345678"),
        (b"\0\0\x08\x03", None, "IDX images file too short: 4 bytes"),
        (idx_images(np.zeros((5, 28, 28), np.uint8))[:-1], None, "truncated IDX images file"),
        (
            idx_images(np.zeros((5, 28, 28), np.uint8)) + b"x",
            None,
            "1 bytes of trailing data after the 5 images",
        ),
        (idx_images(np.zeros((2, 32, 32), np.uint8)), None, "IDX images are 32×32 pixels, expected 28×28"),
        (None, idx_labels(np.zeros(4, np.uint8)), "5 images but its labels file 4 labels"),
        (None, idx_labels(np.zeros(4, np.uint8))[:-1], "truncated IDX labels file"),
        (
            None,
            idx_images(np.zeros((5, 28, 28), np.uint8)),
            "not an IDX labels file: it is an IDX images file",
        ),
        (
            None,
            idx_labels(np.array([1, 2, 12, 3, 255], np.uint8)),
            "2 of 5 labels outside 0–9 (first at index 2",
        ),
    ],
)
def test_idx_refused(images: bytes | None, labels: bytes | None, reason: str) -> None:
    good_images, good_labels = digits(5)
    images = idx_images(good_images) if images is None else images
    labels = idx_labels(good_labels) if labels is None else labels
    assert reason in rejected(parse_idx_pair, images, labels).reason


def test_idx_images_named_plain_but_gzipped_is_explained() -> None:
    images, labels = digits(2)
    error = rejected(parse_input, "a/x-images-idx3-ubyte", gzip.compress(idx_images(images)), idx_labels(labels))
    assert "it looks like gzip data" in error.reason


def test_idx_without_labels_names_the_file_it_looked_for() -> None:
    error = rejected(parse_input, "in/train-images-idx3-ubyte.gz", gzip.compress(idx_images(digits(2)[0])))
    assert error.reason == (
        "no labels file for train-images-idx3-ubyte.gz: "
        "looked for train-labels-idx1-ubyte.gz or train-labels-idx1-ubyte in the same folder"
    )


def test_idx_labels_alone_are_refused() -> None:
    error = rejected(parse_input, "in/t10k-labels-idx1-ubyte", idx_labels(digits(2)[1]))
    assert "t10k-images-idx3-ubyte" in error.reason


# ------------------------------------------------------------------------------------------ NPZ


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_npz_keras_layout() -> None:
    (x_train, y_train), (x_test, y_test) = digits(30, seed=1), digits(7, seed=2)
    parts = parse_input("in/mnist.npz", npz_bytes(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test))
    assert sorted(parts) == ["test", "train"]
    assert_same(parts["train"], x_train, y_train)
    assert_same(parts["test"], x_test, y_test)


def test_npz_single_pair_flat_and_wide_integers() -> None:
    images, labels = digits(11)
    parts = parse_npz(npz_bytes(x=images.reshape(11, 784).astype(np.int64), y=labels.astype(np.int32)))
    assert list(parts) == ["all"]
    assert_same(parts["all"], images, labels)


_unpickled: list[str] = []


def _record_unpickling() -> str:
    _unpickled.append("unpickled")
    return "boom"


class _Booby:
    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _record_unpickling, ()


def test_npz_object_array_is_refused_without_unpickling() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([_Booby()], dtype=object), y=np.zeros(1, np.uint8))
    data = buffer.getvalue()
    _unpickled.clear()
    error = rejected(parse_input, "in/evil.npz", data)
    assert "'x' holds Python objects (dtype object)" in error.reason
    assert _unpickled == []
    np.load(io.BytesIO(data), allow_pickle=True)["x"]  # the control: this file does run code when unpickled
    assert _unpickled == ["unpickled"]


@pytest.mark.parametrize(
    ("arrays", "reason"),
    [
        (
            {"x": np.zeros((3, 32, 32), np.uint8)},
            "'x' has shape (3, 32, 32), expected (N, 28, 28) or (N, 784)",
        ),
        ({"y": np.zeros((3, 1), np.uint8)}, "'y' has shape (3, 1), expected (N,)"),
        ({"x": np.zeros((3, 28, 28), np.float32)}, "'x' has dtype float32; expected integers 0–255"),
        ({"y": np.zeros(3, np.float64)}, "'y' has dtype float64; expected integers 0–9"),
        ({"x": np.full((3, 28, 28), 300, np.int16)}, "'x': 2,352 pixels outside 0–255"),
        ({"y": np.array([1, -1, 2])}, "'y': 1 of 3 labels outside 0–9 (first at index 1: -1"),
        ({"y": np.array([1, 2, 10], np.uint8)}, "1 of 3 labels outside 0–9 (first at index 2: 10"),
        ({"y": np.zeros(2, np.uint8)}, "'x' holds 3 images but 'y' 2 labels"),
        ({"x": np.zeros((0, 28, 28), np.uint8), "y": np.zeros(0, np.uint8)}, "no digits (0 images)"),
    ],
)
def test_npz_refused(arrays: dict[str, np.ndarray], reason: str) -> None:
    images, labels = digits(3)
    data = npz_bytes(**{"x": images, "y": labels, **arrays})
    assert reason in rejected(parse_input, "a/d.npz", data).reason


def test_npz_keras_part_is_named_in_the_reason() -> None:
    (x_train, y_train), (x_test, _) = digits(4), digits(2)
    data = npz_bytes(x_train=x_train, y_train=y_train, x_test=x_test, y_test=np.array([3, 11], np.uint8))
    assert rejected(parse_npz, data).reason.startswith("test: 1 of 2 labels outside 0–9")


@pytest.mark.parametrize(
    ("keys", "found"),
    [(["images", "labels"], "images, labels"), (["x_train", "y_train"], "x_train, y_train")],
)
def test_npz_wrong_keys(keys: list[str], found: str) -> None:
    images, labels = digits(2)
    error = rejected(parse_npz, npz_bytes(**dict(zip(keys, [images, labels], strict=True))))
    assert error.reason == f"NPZ keys are {found}; expected x_train, y_train, x_test, y_test (Keras mnist.npz) or x, y"


def test_npz_not_a_zip_and_corrupt_zip() -> None:
    assert rejected(parse_npz, b"hello").reason == "not an NPZ file: it is not a ZIP archive"
    images, labels = digits(3)
    assert rejected(parse_npz, npz_bytes(x=images, y=labels)[:200]).reason.startswith("not a readable NPZ file")


def test_npz_size_is_capped() -> None:
    data = npz_bytes(x=np.zeros((100, 28, 28), np.uint8), y=np.zeros(100, np.uint8))
    assert "more than the 10,000 allowed" in rejected(parse_npz, data, max_bytes=10_000).reason


def test_npz_size_is_read_from_the_header_before_any_data() -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**12, 784)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(784))
        archive.writestr("y.npy", header.getvalue().replace(b"784", b"   "))
    error = rejected(parse_npz, buffer.getvalue())
    assert (
        error.reason == "NPZ arrays take 785,000,000,000,000 bytes, more than the 1,073,741,824 allowed for one input"
    )


# ------------------------------------------------------------------------------------------ real MNIST


@pytest.fixture
def mnist() -> Path:
    if not MNIST.is_dir():
        pytest.skip("../shared/data/mnist absent: real MNIST files not available")
    return MNIST


def test_real_csv_slice_matches_keras_npz(mnist: Path) -> None:
    with gzip.open(mnist / "mnist_train.csv.gz", "rb") as lines:
        head = b"".join(next(lines) for _ in range(2000))
    parts = parse_input("incoming/mnist_train_head.csv", head)
    with np.load(mnist / "mnist.npz", allow_pickle=False) as npz:
        assert_same(parts["all"], npz["x_train"][:2000], npz["y_train"][:2000])


def test_real_idx_matches_keras_npz(mnist: Path) -> None:
    key = "incoming/t10k-images-idx3-ubyte.gz"
    images = (mnist / "t10k-images-idx3-ubyte.gz").read_bytes()
    labels = (mnist / idx_labels_candidates(key)[0].rsplit("/", 1)[-1]).read_bytes()
    parts = parse_input(key, images, labels)
    with np.load(mnist / "mnist.npz", allow_pickle=False) as npz:
        assert_same(parts["all"], npz["x_test"], npz["y_test"])
