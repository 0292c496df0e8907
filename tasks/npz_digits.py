"""Reads an NPZ input (Keras' mnist.npz layout, or a single x, y pair) into uint8 digit arrays, without pickle."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np

from tasks.csv_digits import looks_like
from tasks.validate import (
    IMAGE_SHAPE,
    MAX_DECOMPRESSED_BYTES,
    N_PIXELS,
    DigitArrays,
    InputRejected,
    label_range_problem,
    pixel_range_problem,
    require_valid,
)

KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")
PAIR_KEYS = ("x", "y")


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
        raise InputRejected(f"not an NPZ file: it is not a ZIP archive{looks_like(data)}")
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
