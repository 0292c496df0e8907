"""CSV digits: label then 784 pixels a line, optional header, read in bulk with numpy and row by row.

`parse_csv_rows` keeps good and bad rows apart; `parse_csv` rejects a file with any bad row. Both are re-exported
by `tasks.parse`, which dispatches every input type. `looks_like`, which names binary data found where text
was expected, lives here and is shared with the gzip and IDX checks in `tasks.parse` and with `tasks.npz_digits`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tasks.validate import IMAGE_SHAPE, MAX_ERRORS, N_PIXELS, DigitArrays, InputRejected

__all__ = ["GZIP_MAGIC", "N_COLUMNS", "CsvRows", "RowProblem", "parse_csv", "parse_csv_rows"]

N_COLUMNS = N_PIXELS + 1
GZIP_MAGIC = b"\x1f\x8b"
_SIGNATURES = (
    (GZIP_MAGIC, "gzip data"),
    (b"PK\x03\x04", "a ZIP/NPZ archive"),
    (b"\x00\x00\x08\x03", "an IDX images file"),
    (b"\x00\x00\x08\x01", "an IDX labels file"),
    (b"\x93NUMPY", "a .npy array"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8"),
    (b"\x89PNG", "a PNG image"),
)


def looks_like(data: bytes) -> str:
    """A hint for a rejection message, naming the known format `data` starts with ("" when none matches)."""
    return next((f"; it looks like {what}" for magic, what in _SIGNATURES if data.startswith(magic)), "")


def _capped(messages: list[str]) -> list[str]:
    extra = len(messages) - MAX_ERRORS
    return messages[:MAX_ERRORS] + ([f"… and {extra:,} more"] if extra > 0 else [])


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
        raise InputRejected(f"not a CSV text file (binary data{looks_like(data)})")
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
