"""`quarantine/`: what ingest refused, byte for byte under the same key as in `incoming/`, with its reason.

A refused input `incoming/a/b.csv` becomes `quarantine/a/b.csv` plus `quarantine/a/b.csv.reason.json`; the bad
rows of an input accepted in part go to `quarantine/a/b.csv.rejected-rows.csv`.
"""

from __future__ import annotations

import csv
import io
import json

from tasks.csv_digits import RowProblem
from tasks.store import Store
from tasks.validate import InputRejected

INCOMING = "incoming/"
QUARANTINE = "quarantine/"
REASON_SUFFIX = ".reason.json"
REJECTED_ROWS_SUFFIX = ".rejected-rows.csv"
REJECTED_ROWS_HEADER = ("row", "reason", "raw_line")


def quarantine_key(key: str) -> str:
    return QUARANTINE + key.removeprefix(INCOMING)


def rejected_rows_key(key: str) -> str:
    return quarantine_key(key) + REJECTED_ROWS_SUFFIX


def quarantine_file(store: Store, key: str, error: InputRejected, run_id: str, at: str) -> None:
    """Copy `key` byte for byte under quarantine/ and write its reason record next to it."""
    destination = quarantine_key(key)
    store.copy(key, destination)
    errors = error.errors or [error.reason]  # never an empty list: a reader looks there for the details
    record = {"source": key, "reason": error.reason, "errors": errors, "run_id": run_id, "at": at}
    store.put(destination + REASON_SUFFIX, json.dumps(record, indent=1, ensure_ascii=False).encode())


def rejected_rows_csv(problems: list[RowProblem]) -> bytes:
    """The bad rows as CSV: row number (counted after any header, from 1), reason, and the line as it was."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REJECTED_ROWS_HEADER)
    for problem in problems:
        # the message starts "row 12: "; the row has its own column
        writer.writerow([problem.row, problem.message.removeprefix(f"row {problem.row:,}: "), problem.raw])
    return buffer.getvalue().encode()
