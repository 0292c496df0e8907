"""Bad rows inside an otherwise good CSV: keep the good rows, set the bad ones aside with a reason each.

A file whose share of bad rows is at most the configured fraction is accepted without them; above it, the
whole file is rejected. Either way every row is accounted for: in the dataset or in quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.csv_digits import RowProblem, _capped, parse_csv_rows
from tasks.parse import MAX_DECOMPRESSED_BYTES, input_kind, maybe_gunzip, parse_input
from tasks.validate import DigitArrays, InputRejected, require_valid


class RowsRejected(InputRejected):
    """A CSV with too many bad rows: the whole file, `n_rows` rows, is rejected."""

    def __init__(self, reason: str, errors: list[str], n_rows: int) -> None:
        super().__init__(reason, errors)
        self.n_rows = n_rows


@dataclass(frozen=True, eq=False)
class Parsed:
    """An accepted input: its named parts (see `parse_input`) and the CSV rows set aside."""

    parts: dict[str, DigitArrays]
    bad_rows: list[RowProblem]


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _bad_rows(problems: list[RowProblem], n_rows: int) -> str:
    return f"{len(problems):,} bad row{'s' if len(problems) > 1 else ''} of {n_rows:,}"


def read_csv_input(
    key: str, data: bytes, max_bad_fraction: float, *, max_bytes: int = MAX_DECOMPRESSED_BYTES
) -> Parsed:
    """Reads a CSV input (plain or gzip) as the part "all", keeping its good rows when few enough are bad.

    Args:
        key: the input's key; a `.gz` name means gzip data.
        data: the input's bytes.
        max_bad_fraction: the largest share of bad rows (0–1) for which the good rows are kept.
        max_bytes: the most bytes the input may decompress to.

    Raises:
        RowsRejected: more than `max_bad_fraction` of the rows are bad, or none is good.
        InputRejected: a problem of the whole file (empty, not gzip, binary, header only, bad header).
    """
    if not data:
        raise InputRejected("empty file")
    rows = parse_csv_rows(maybe_gunzip(data, key, max_bytes=max_bytes))
    problems = rows.problems
    if problems and (len(problems) / rows.n_rows > max_bad_fraction or rows.labels.size == 0):
        raise RowsRejected(
            f"{_bad_rows(problems, rows.n_rows)}, more than the {_percent(max_bad_fraction)} allowed "
            f"(max_bad_row_fraction); first: {problems[0].message}",
            _capped([p.message for p in problems]),
            rows.n_rows,
        )
    return Parsed({"all": require_valid(DigitArrays(rows.images, rows.labels))}, problems)


def partial_reason(n_rows: int, problems: list[RowProblem], rejected_rows_key: str) -> str:
    """One line for an input of `n_rows` rows accepted without its bad rows."""
    return f"{_bad_rows(problems, n_rows)} set aside in {rejected_rows_key}; first: {problems[0].message}"


def parse_with_row_policy(key: str, data: bytes, labels_data: bytes | None, max_bad_fraction: float) -> Parsed:
    """`parse_input`, except that a CSV keeps its good rows while at most `max_bad_fraction` of them are bad.

    Other formats are accepted whole or not at all: a bad value there means a bad producer, not a bad row.

    Raises:
        RowsRejected: a CSV with too many bad rows.
        InputRejected: anything else unusable.
    """
    if input_kind(key) == "csv":
        return read_csv_input(key, data, max_bad_fraction)
    return Parsed(parse_input(key, data, labels_data), [])
