"""Turns one landing-zone input (bytes) into uint8 digit arrays: CSV, IDX and NPZ, plain or gzip.

Every unusable input raises `InputRejected` whose reason says what is wrong and where.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tasks.validate import (
    IMAGE_SHAPE,
    MAX_ERRORS,
    N_PIXELS,
    DigitArrays,
    InputRejected,
    label_range_problem,
    pixel_range_problem,
    require_valid,
)

InputKind = Literal["csv", "idx-images", "idx-labels", "npz"]

MAX_DECOMPRESSED_BYTES = 1 << 30
N_COLUMNS = N_PIXELS + 1
GZIP_MAGIC = b"\x1f\x8b"
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049
KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")
PAIR_KEYS = ("x", "y")
_SIGNATURES = (
    (GZIP_MAGIC, "gzip data"),
    (b"PK\x03\x04", "a ZIP/NPZ archive"),
    (b"\x00\x00\x08\x03", "an IDX images file"),
    (b"\x00\x00\x08\x01", "an IDX labels file"),
    (b"\x93NUMPY", "a .npy array"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8"),
    (b"\x89PNG", "a PNG image"),
)


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _looks_like(data: bytes) -> str:
    return next((f"; it looks like {what}" for magic, what in _SIGNATURES if data.startswith(magic)), "")


def _capped(messages: list[str]) -> list[str]:
    extra = len(messages) - MAX_ERRORS
    return messages[:MAX_ERRORS] + ([f"… and {extra:,} more"] if extra > 0 else [])


def input_kind(key: str) -> InputKind | None:
    """Classifies a key by its file name, case-insensitively; None means unsupported."""
    name = _name(key).lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".npz"):
        return "npz"
    stem = name.removesuffix(".gz")
    if stem.endswith("idx3-ubyte"):
        return "idx-images"
    if stem.endswith("idx1-ubyte"):
        return "idx-labels"
    return None


def _idx_counterparts(key: str, src: tuple[str, str], dst: tuple[str, str]) -> list[str]:
    prefix, name = key[: len(key) - len(_name(key))], _name(key)
    gz = name[-3:] if name.lower().endswith(".gz") else ""
    stem = name[: len(name) - len(gz)]
    pattern = re.compile(rf"(?:{src[0]}([-._]))?{src[1]}(?=[-._]ubyte$)", re.IGNORECASE)

    def swap(match: re.Match[str]) -> str:
        new = (dst[0] + match.group(1) if match.group(1) is not None else "") + dst[1]
        return new.upper() if match.group(0).isupper() else new

    new_stem, found = pattern.subn(swap, stem)
    if not found:
        return []
    names = [new_stem + gz, new_stem] if gz else [new_stem, new_stem + (".GZ" if stem.isupper() else ".gz")]
    return [prefix + n for n in names]


def idx_labels_candidates(images_key: str) -> list[str]:
    """The keys its labels file may have, in the same folder, most likely first.

    "a/train-images-idx3-ubyte.gz" gives ["a/train-labels-idx1-ubyte.gz", "a/train-labels-idx1-ubyte"];
    the "images.idx3-ubyte" spelling and upper case are kept; [] when the key is not an IDX images name.
    """
    return _idx_counterparts(images_key, ("images", "idx3"), ("labels", "idx1"))


def idx_images_candidates(labels_key: str) -> list[str]:
    """The inverse of `idx_labels_candidates`: the images keys a labels file belongs to."""
    return _idx_counterparts(labels_key, ("labels", "idx1"), ("images", "idx3"))


def _gunzip(data: bytes, name: str, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    rest = data
    while rest:  # one pass per gzip member: concatenated members are valid gzip
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while not inflater.eof:
                # max_length bounds memory, so a small bomb cannot expand past the limit before we notice
                chunk = inflater.decompress(pending, max_bytes - total + 1)
                pending = inflater.unconsumed_tail
                total += len(chunk)
                if total > max_bytes:
                    raise InputRejected(
                        f"{name} decompresses to more than {max_bytes:,} bytes, the limit for one input; "
                        "split it into smaller files"
                    )
                parts.append(chunk)
                if not chunk and not pending:
                    break
        except zlib.error as exc:
            raise InputRejected(f"corrupt gzip data in {name}: {exc}") from exc
        if not inflater.eof:
            raise InputRejected(
                f"truncated gzip: {name} ends before its gzip stream does "
                f"({total:,} bytes decompressed); upload it again"
            )
        rest = inflater.unused_data
        if rest and not rest.startswith(GZIP_MAGIC):
            if not rest.strip(b"\0"):  # zero padding after the stream is allowed by gzip tools
                break
            raise InputRejected(f"{name} has {len(rest):,} bytes of non-gzip data after its gzip stream")
    return b"".join(parts)


def maybe_gunzip(data: bytes, key: str, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompresses `data` when `key` ends with .gz (any case); returns it unchanged otherwise.

    Raises:
        InputRejected: not gzip data, truncated or corrupt, or more than `max_bytes` once decompressed.
    """
    if not key.lower().endswith(".gz"):
        return data
    if not data.startswith(GZIP_MAGIC):
        raise InputRejected(f"{_name(key)} is named .gz but is not gzip data{_looks_like(data)}")
    return _gunzip(data, _name(key), max_bytes)


# ---------------------------------------------------------------------------------------------------- CSV

_BOM = b"\xef\xbb\xbf"
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")  # longer is no pixel, and int() refuses over 4,300 digits
_LABEL_NAMES = {"label", "labels", "class", "target", "digit", "y"}
_CHUNK_LINES = 2048
# Spaces, tabs, CRs and quotes around a value are ignored, the same way by the bulk and the row parser
_PADDING_CHARS = ' \t\r"'


@dataclass(frozen=True)
class RowProblem:
    """One unusable CSV row. `message` is a whole line ("row 12: …"); `raw` is the row's text."""

    row: int
    message: str
    raw: str


@dataclass(frozen=True, eq=False)
class CsvRows:
    """The outcome of reading every row of a CSV, good and bad.

    Row numbers count lines after the header (or from the file's first line when there is none), from 1;
    blank lines are skipped but keep their number, so row N is always the same line of the file.

    Attributes:
        images: (M, 28, 28) uint8 of the good rows, in file order.
        labels: (M,) uint8 of the good rows.
        rows: (M,) int64 row numbers of the good rows.
        problems: the bad rows, in file order.
        header: the header line, or None.
    """

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    problems: list[RowProblem]
    header: str | None

    @property
    def n_rows(self) -> int:
        """Data rows in the file, good and bad, blank lines not counted."""
        return int(self.rows.size) + len(self.problems)


def _is_header(line: bytes) -> bool:
    fields = [f.strip(_PADDING_CHARS.encode()) for f in line.split(b",")]
    if fields[0] and not _is_number(fields[0]):
        return True
    # pandas writes "0,1,…,784" above an unnamed DataFrame: as data it would be a row of impossible pixels
    return any(fields == [str(i).encode() for i in range(start, start + N_COLUMNS)] for start in (0, 1))


def _is_number(text: bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_header(data: bytes) -> tuple[str | None, bytes]:
    end = data.find(b"\n")
    first, rest = (data, b"") if end < 0 else (data[:end], data[end + 1 :])
    other = next((sep for sep in (b";", b"\t", b"|") if b"," not in first and first.count(sep) > 100), None)
    if other is not None:
        raise InputRejected(f"values are separated by {other.decode()!r}, expected ','")
    if not _is_header(first):
        return None, data
    header = first.decode("utf-8").strip()
    columns = [c.strip(_PADDING_CHARS) for c in header.split(",")]
    if len(columns) != N_COLUMNS:
        raise InputRejected(f"header has {len(columns):,} columns, expected {N_COLUMNS} (label + 784 pixels)")
    misplaced = next((i for i, c in enumerate(columns[1:], 2) if c.lower() in _LABEL_NAMES), None)
    if misplaced is not None:
        raise InputRejected(
            f"header names column {misplaced} {columns[misplaced - 1]!r}: the label must be the first column"
        )
    return header, rest


def _parse_chunk(seg: np.ndarray, n_lines: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parses lines made only of digits, commas and padding in bulk.

    Returns the (M, 785) values of those lines, their indices, and the indices of every other line (bad,
    blank or unusual), which `_parse_row` reads one by one: it alone words the problems.
    """
    newline, comma, zero, nine = (ord(c) for c in "\n,09")
    is_digit = (seg >= zero) & (seg <= nine)
    slow = np.zeros(n_lines, dtype=bool)
    padding = np.zeros(seg.shape, dtype=bool)
    for byte in _PADDING_CHARS.encode():
        padding |= seg == byte
    if padding.any():
        keep = np.flatnonzero(~padding)
        # padding between two digits ("1 2") splits a number: not ours to guess
        split = (np.diff(keep) > 1) & is_digit[keep[:-1]] & is_digit[keep[1:]]
        slow[np.searchsorted(np.flatnonzero(seg == newline), keep[:-1][split])] = True
        seg, is_digit = seg[keep], is_digit[keep]
    newlines = np.flatnonzero(seg == newline)
    is_comma = seg == comma
    odd = np.flatnonzero(~(is_digit | is_comma | (seg == newline)))
    slow[np.searchsorted(newlines, odd)] = True

    starts, ends = np.append(0, newlines + 1), np.append(newlines, seg.size)
    commas = np.flatnonzero(is_comma)
    n_fields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    separators = np.flatnonzero(is_comma | (seg == newline))
    field_end = np.append(separators, seg.size)
    field_len = field_end - np.append(0, separators + 1)
    # Up to three digits read right to left; wrong lengths are flagged below, so wrapped indices are harmless
    digits = seg.astype(np.int16) - zero
    value = digits[field_end - 1]
    value += np.where(field_len >= 2, 10 * digits[field_end - 2], 0).astype(np.int16)
    value += np.where(field_len >= 3, 100 * digits[field_end - 3], 0).astype(np.int16)

    field_line = np.repeat(np.arange(n_lines), n_fields)
    bad = (field_len == 0) | (field_len > 3) | (value > 255)
    label_at = np.cumsum(n_fields) - n_fields
    bad[label_at] |= value[label_at] > 9
    slow[field_line[bad]] = True
    slow |= n_fields != N_COLUMNS
    values = value[~slow[field_line]].reshape(-1, N_COLUMNS).astype(np.uint8)
    return values, np.flatnonzero(~slow), np.flatnonzero(slow)


def _parse_row(text: str, row: int) -> np.ndarray | str:
    """Returns the row's 785 values, or a one-line description of its first problem."""
    fields = text.split(",")
    if len(fields) != N_COLUMNS:
        return f"row {row:,}: {len(fields):,} values, expected {N_COLUMNS} (label + 784 pixels)"
    values: list[int] = []
    for i, field in enumerate(fields):
        token, top = field.strip(_PADDING_CHARS), 9 if i == 0 else 255
        if _INTEGER.fullmatch(token) and 0 <= (number := int(token)) <= top:
            values.append(number)
            continue
        what = "label" if i == 0 else f"pixel {i - 1}"
        if not token:
            return f"row {row:,}: {what} is missing"
        if _INTEGER.fullmatch(token):
            return f"row {row:,}: {what} is {int(token)}, outside 0–{top}"
        shown = token if len(token) <= 20 else token[:20] + "…"
        return f"row {row:,}: {what} is {shown!r}, not an integer 0–{top}"
    return np.array(values, dtype=np.uint8)


def parse_csv_rows(data: bytes) -> CsvRows:
    """Reads every row of a CSV (label then 784 pixels a line, optional header), keeping good and bad apart.

    Tolerates a UTF-8 BOM, CRLF line endings, blank lines, and spaces or quotes around values.

    Raises:
        InputRejected: for problems of the whole file: empty, binary, header only, or a header that does not
            fit the layout. Row problems are returned, not raised.
    """
    data = data.removeprefix(_BOM)
    if not data.strip():
        raise InputRejected("empty file")
    if b"\0" in data or not (data.isascii() or _is_utf8(data)):
        raise InputRejected(f"not a CSV text file (binary data{_looks_like(data)})")
    header, body = _split_header(data)
    if not body.strip():
        raise InputRejected("header only, no data rows")

    buffer = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(buffer == ord("\n"))
    starts, ends = np.append(0, newlines + 1), np.append(newlines, buffer.size)
    good: list[np.ndarray] = []
    good_lines: list[np.ndarray] = []
    problems: list[RowProblem] = []
    for first in range(0, starts.size, _CHUNK_LINES):
        last = min(first + _CHUNK_LINES, starts.size)
        values, ok, slow = _parse_chunk(buffer[starts[first] : ends[last - 1]], last - first)
        good.append(values)
        good_lines.append(ok + first)
        for line in (slow + first).tolist():
            text = body[starts[line] : ends[line]].decode("utf-8").rstrip("\r")
            if not text.strip():
                continue
            parsed = _parse_row(text, line + 1)
            if isinstance(parsed, str):
                problems.append(RowProblem(line + 1, parsed, text))
            else:
                good.append(parsed[np.newaxis])
                good_lines.append(np.array([line]))
    lines = np.concatenate(good_lines)
    order = np.argsort(lines, kind="stable")
    table = np.concatenate(good)[order]
    return CsvRows(
        images=np.ascontiguousarray(table[:, 1:].reshape(-1, *IMAGE_SHAPE)),
        labels=np.ascontiguousarray(table[:, 0]),
        rows=lines[order].astype(np.int64) + 1,
        problems=problems,
        header=header,
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_csv(data: bytes) -> DigitArrays:
    """Parses a whole CSV; any bad row rejects the file.

    Raises:
        InputRejected: reason "3 bad rows of 2,000; first: row 12: …", errors one line per bad row.
    """
    rows = parse_csv_rows(data)
    if rows.problems:
        n_bad, first = len(rows.problems), rows.problems[0].message
        raise InputRejected(
            f"{n_bad:,} bad row{'s' if n_bad > 1 else ''} of {rows.n_rows:,}; first: {first}",
            _capped([p.message for p in rows.problems]),
        )
    return DigitArrays(rows.images, rows.labels)


# ---------------------------------------------------------------------------------------------------- IDX


def _idx_body(data: bytes, magic: int, what: str, ndim: int) -> tuple[tuple[int, ...], np.ndarray]:
    head = 4 + 4 * ndim
    (found,) = struct.unpack(">I", data[:4].rjust(4, b"\xff"))  # padding no magic can match
    if len(data) >= 4 and found != magic:
        known = {IDX_IMAGES_MAGIC: "an IDX images file", IDX_LABELS_MAGIC: "an IDX labels file"}.get(found)
        detail = f"it is {known}" if known else f"its magic number is {found:#010x}{_looks_like(data)}"
        raise InputRejected(f"not an IDX {what} file: {detail}, expected magic {magic} ({magic:#010x})")
    if len(data) < head:
        raise InputRejected(f"IDX {what} file too short: {len(data):,} bytes, its header alone is {head}")
    dims = struct.unpack(f">{ndim}I", data[4:head])
    expected = head + math.prod(dims)
    if len(data) < expected:
        raise InputRejected(
            f"truncated IDX {what} file: its header declares {dims[0]:,} {what} ({expected:,} bytes) "
            f"but it has {len(data):,} bytes"
        )
    if len(data) > expected:
        raise InputRejected(
            f"IDX {what} file has {len(data) - expected:,} bytes of trailing data "
            f"after the {dims[0]:,} {what} its header declares"
        )
    return tuple(dims), np.frombuffer(data, dtype=np.uint8, offset=head)


def parse_idx_images(data: bytes) -> np.ndarray:
    """Reads an uncompressed IDX images file (magic 2051) as a read-only (N, 28, 28) uint8 view."""
    dims, pixels = _idx_body(data, IDX_IMAGES_MAGIC, "images", 3)
    if dims[1:] != IMAGE_SHAPE:
        raise InputRejected(f"IDX images are {dims[1]}×{dims[2]} pixels, expected 28×28")
    return pixels.reshape(dims)


def parse_idx_labels(data: bytes) -> np.ndarray:
    """Reads an uncompressed IDX labels file (magic 2049) as a read-only (N,) uint8 view."""
    return _idx_body(data, IDX_LABELS_MAGIC, "labels", 1)[1]


def parse_idx_pair(images: bytes, labels: bytes) -> DigitArrays:
    """Reads an uncompressed IDX images file and its labels file into (writable) digit arrays."""
    x, y = parse_idx_images(images), parse_idx_labels(labels)
    if x.shape[0] != y.shape[0]:
        raise InputRejected(f"the IDX images file holds {x.shape[0]:,} images but its labels file {y.size:,} labels")
    return require_valid(DigitArrays(x.copy(), y.copy()))


# ---------------------------------------------------------------------------------------------------- NPZ


def _npy_bytes(npz: np.lib.npyio.NpzFile, key: str) -> int:
    """Reads only the header of array `key`: its size, and refuses object arrays before any data is read."""
    with npz.zip.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    if dtype.hasobject:
        raise InputRejected(
            f"NPZ array {key!r} holds Python objects (dtype {dtype}), refused: reading it would run pickle; "
            "store numeric arrays"
        )
    return math.prod(shape) * dtype.itemsize


def _as_uint8(values: np.ndarray, key: str, top: int) -> np.ndarray:
    if values.dtype == np.uint8:
        return np.array(values, dtype=np.uint8)
    if not np.issubdtype(values.dtype, np.integer):
        raise InputRejected(f"NPZ array {key!r} has dtype {values.dtype}; expected integers 0–{top} (uint8)")
    problem = pixel_range_problem(values) if top == 255 else label_range_problem(values)
    if problem:
        raise InputRejected(f"NPZ array {key!r}: {problem}")
    return values.astype(np.uint8)


def _npz_pair(x: np.ndarray, y: np.ndarray, x_key: str, y_key: str) -> DigitArrays:
    if x.ndim == 2 and x.shape[1] == N_PIXELS:
        x = x.reshape(-1, *IMAGE_SHAPE)
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise InputRejected(f"NPZ array {x_key!r} has shape {x.shape}, expected (N, 28, 28) or (N, 784)")
    if y.ndim != 1:
        raise InputRejected(f"NPZ array {y_key!r} has shape {y.shape}, expected (N,)")
    if x.shape[0] != y.shape[0]:
        raise InputRejected(f"NPZ array {x_key!r} holds {x.shape[0]:,} images but {y_key!r} {y.size:,} labels")
    return DigitArrays(_as_uint8(x, x_key, 255), _as_uint8(y, y_key, 9))


def parse_npz(data: bytes, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> dict[str, DigitArrays]:
    """Reads an NPZ without pickle: Keras' layout gives {"train", "test"}, a single x, y pair {"all"}.

    Images may be (N, 28, 28) or (N, 784), of any integer dtype whose values lie in 0–255; labels (N,) 0–9.
    """
    if not data.startswith(b"PK"):
        raise InputRejected(f"not an NPZ file: it is not a ZIP archive{_looks_like(data)}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            keys = sorted(npz.files)
            layout = next((lay for lay in (KERAS_KEYS, PAIR_KEYS) if keys == sorted(lay)), None)
            if layout is None:
                raise InputRejected(
                    f"NPZ keys are {', '.join(keys) or 'none'}; expected x_train, y_train, x_test, y_test "
                    "(Keras mnist.npz) or x, y"
                )
            size = sum(_npy_bytes(npz, key) for key in layout)
            if size > max_bytes:
                raise InputRejected(
                    f"NPZ arrays take {size:,} bytes, more than the {max_bytes:,} allowed for one input"
                )
            arrays = {key: np.asarray(npz[key]) for key in layout}  # allow_pickle=False: a second guard
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError) as exc:
        raise InputRejected(f"not a readable NPZ file: {exc}") from exc
    if layout == PAIR_KEYS:
        return {"all": require_valid(_npz_pair(arrays["x"], arrays["y"], "x", "y"))}
    return {
        part: require_valid(_npz_pair(arrays[f"x_{part}"], arrays[f"y_{part}"], f"x_{part}", f"y_{part}"), where=part)
        for part in ("train", "test")
    }


# ---------------------------------------------------------------------------------------------------- entry


def parse_input(
    key: str, data: bytes, labels_data: bytes | None = None, *, max_bytes: int = MAX_DECOMPRESSED_BYTES
) -> dict[str, DigitArrays]:
    """Parses one landing-zone input into named parts ("all", or "train" and "test" for Keras' NPZ layout).

    Args:
        key: the input's key; only its file name matters (see `input_kind`).
        data: the input's bytes.
        labels_data: for an IDX images file, its labels file's bytes (plain or gzip, told by content).
        max_bytes: the most bytes one input may decompress to.

    Raises:
        InputRejected: anything unusable, unsupported file types included.
    """
    kind, name = input_kind(key), _name(key)
    if kind is None:
        raise InputRejected(
            f"unsupported file type: {name!r}; expected .csv, .csv.gz, .npz, or an IDX pair "
            "*-images-idx3-ubyte[.gz] with *-labels-idx1-ubyte[.gz]"
        )
    if not data:
        raise InputRejected("empty file")
    if kind == "csv":
        parts = {"all": parse_csv(maybe_gunzip(data, key, max_bytes=max_bytes))}
    elif kind == "npz":
        parts = parse_npz(data, max_bytes=max_bytes)
    elif kind == "idx-labels":
        images = " or ".join(_name(k) for k in idx_images_candidates(key)) or "its *-images-idx3-ubyte file"
        raise InputRejected(f"{name} is an IDX labels file; it is read with its images file ({images}), not alone")
    elif labels_data is None:
        wanted = " or ".join(_name(k) for k in idx_labels_candidates(key)) or "a *-labels-idx1-ubyte file"
        raise InputRejected(f"no labels file for {name}: looked for {wanted} in the same folder")
    else:
        if labels_data.startswith(GZIP_MAGIC):
            labels_data = _gunzip(labels_data, f"the labels file of {name}", max_bytes)
        parts = {"all": parse_idx_pair(maybe_gunzip(data, key, max_bytes=max_bytes), labels_data)}
    return {part: require_valid(arrays, where="" if part == "all" else part) for part, arrays in parts.items()}
