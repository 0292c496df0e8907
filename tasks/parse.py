"""Turns one landing-zone input (bytes) into uint8 digit arrays: CSV, IDX and NPZ, plain or gzip.

Every unusable input raises `InputRejected` whose reason says what is wrong and where.
CSV parsing lives in `tasks.csv_digits` and NPZ in `tasks.npz_digits`; their public names are re-exported here.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from typing import Literal

import numpy as np

from tasks.csv_digits import (
    GZIP_MAGIC,
    N_COLUMNS,
    CsvRows,
    RowProblem,
    looks_like,
    parse_csv,
    parse_csv_rows,
)
from tasks.npz_digits import KERAS_KEYS, PAIR_KEYS, parse_npz
from tasks.validate import IMAGE_SHAPE, MAX_DECOMPRESSED_BYTES, DigitArrays, InputRejected, require_valid

__all__ = [
    "GZIP_MAGIC",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "KERAS_KEYS",
    "MAX_DECOMPRESSED_BYTES",
    "N_COLUMNS",
    "PAIR_KEYS",
    "CsvRows",
    "DigitArrays",
    "InputKind",
    "InputRejected",
    "RowProblem",
    "idx_images_candidates",
    "idx_labels_candidates",
    "input_kind",
    "maybe_gunzip",
    "parse_csv",
    "parse_csv_rows",
    "parse_idx_images",
    "parse_idx_labels",
    "parse_idx_pair",
    "parse_input",
    "parse_npz",
]

InputKind = Literal["csv", "idx-images", "idx-labels", "npz"]

IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


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
        raise InputRejected(f"{_name(key)} is named .gz but is not gzip data{looks_like(data)}")
    return _gunzip(data, _name(key), max_bytes)


# ---------------------------------------------------------------------------------------------------- IDX


def _idx_body(data: bytes, magic: int, what: str, ndim: int) -> tuple[tuple[int, ...], np.ndarray]:
    head = 4 + 4 * ndim
    (found,) = struct.unpack(">I", data[:4].rjust(4, b"\xff"))  # padding no magic can match
    if len(data) >= 4 and found != magic:
        known = {IDX_IMAGES_MAGIC: "an IDX images file", IDX_LABELS_MAGIC: "an IDX labels file"}.get(found)
        detail = f"it is {known}" if known else f"its magic number is {found:#010x}{looks_like(data)}"
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
