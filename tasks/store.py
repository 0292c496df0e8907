"""Object store with one interface and two backends: a local folder, and S3 via boto3 (`tasks/s3_store.py`).

Both backends expose the same layout and the same behaviour: keys are `/`-separated relative paths, every
write is atomic (a reader sees the old bytes or the new ones, never a mix), and `put_if` is a conditional
write on the ETag read earlier (S3 `If-Match` / `If-None-Match`; a lock plus atomic replace locally).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

DEFAULT_URL_EXPIRY_SECONDS = 3600
_PARTIAL_MARK = ".partial-"
_LOCK_DIR = ".locks"


class StoreError(Exception):
    """A store operation failed for a reason a person has to fix (message is one line)."""


class StoreUnavailable(StoreError):
    """The store could not be reached or answered with a server error: worth retrying."""


class ObjectNotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the object changed (or appeared) since its ETag was read."""


@dataclass(frozen=True)
class ObjectInfo:
    """A listed object. `fingerprint` changes whenever the content may have (ETag on S3, size+mtime locally)."""

    key: str
    size: int
    fingerprint: str
    modified: datetime | None = None  # when it was last written (S3's LastModified, the file's mtime)


class Store(Protocol):
    """What every backend offers. Keys never start with `/` and never contain `..`."""

    uri: str

    def put(self, key: str, data: bytes, content_type: str | None = None) -> str: ...
    def get(self, key: str) -> bytes: ...
    def get_with_etag(self, key: str) -> tuple[bytes, str]: ...
    def put_if(self, key: str, data: bytes, if_match: str | None, content_type: str | None = None) -> str: ...
    def exists(self, key: str) -> bool: ...
    def head(self, key: str) -> ObjectInfo: ...
    def list(self, prefix: str = "") -> list[ObjectInfo]: ...
    def copy(self, source: str, destination: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def url(self, key: str, expires: int = DEFAULT_URL_EXPIRY_SECONDS) -> str: ...


def is_transient_store_error(exc: BaseException) -> bool:
    """True for failures a retry can bridge (endpoint down, timeouts, 5xx, throttling)."""
    return isinstance(exc, StoreUnavailable)


def read_json_with_etag(store: Store, key: str) -> tuple[Any, str | None]:
    """The JSON document at `key` and its ETag, for a later conditional write; (None, None) when absent."""
    try:
        data, etag = store.get_with_etag(key)
    except ObjectNotFound:
        return None, None
    return json.loads(data), etag


def delete_folder(store: Store, prefix: str) -> int:
    """Delete every object under `prefix` (one that vanished meanwhile is not an error); returns how many."""
    deleted = 0
    for info in store.list(prefix):
        try:
            store.delete(info.key)
        except ObjectNotFound:
            continue
        deleted += 1
    return deleted


def open_store(uri: str) -> Store:
    """Open the store named by `uri`: `s3://bucket[/prefix]`, `file:///path` or a plain folder path."""
    if not uri or not uri.strip():
        raise StoreError("empty store URI: pass --store or set MNIST_STORE")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"store URI {uri!r} names no bucket: use s3://bucket[/prefix]")
        from tasks.s3_store import S3Store  # boto3 is only loaded for an S3 store

        return S3Store(parsed.netloc, parsed.path.strip("/"))
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise StoreError(f"unsupported store URI {uri!r}: use a folder path, file:///path or s3://bucket[/prefix]")
    return LocalStore(Path(uri))


def check_key(key: str) -> str:
    """`key` if it is a relative `/`-separated path with no empty, `.` or `..` part; StoreError otherwise."""
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise StoreError(f"invalid store key {key!r}")
    return key


def _local_info(key: str, path: Path) -> ObjectInfo:
    stat = path.stat()
    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    return ObjectInfo(key, stat.st_size, f"{stat.st_size}-{stat.st_mtime_ns}", modified)


def _etag(data: bytes) -> str:
    # MD5 matches what S3 reports for single-part uploads, so ETags look alike on both backends
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalStore:
    """A folder laid out exactly like the bucket."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}{_PARTIAL_MARK}{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return _etag(data)

    def get(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{key} not found in {self.uri}") from None
        return data, _etag(data)

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        lock_dir = self.root / _LOCK_DIR
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_path = lock_dir / hashlib.sha256(key.encode()).hexdigest()
        with open(lock_path, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def put_if(self, key: str, data: bytes, if_match: str | None, content_type: str | None = None) -> str:
        with self._lock(key):
            try:
                current: str | None = self.get_with_etag(key)[1]
            except ObjectNotFound:
                current = None
            if current != if_match:
                expected = "no object" if if_match is None else f"ETag {if_match}"
                raise PreconditionFailed(f"{key} changed concurrently (expected {expected})")
            return self.put(key, data, content_type)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"{key} not found in {self.uri}")
        return _local_info(key, path)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root and _LOCK_DIR in dirnames:
                dirnames.remove(_LOCK_DIR)
            for name in filenames:
                if _PARTIAL_MARK in name:
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(_local_info(key, path))
        return sorted(found, key=lambda info: info.key)

    def copy(self, source: str, destination: str) -> None:
        src, dst = self._path(source), self._path(destination)
        if not src.is_file():
            raise ObjectNotFound(f"{source} not found in {self.uri}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}{_PARTIAL_MARK}{uuid.uuid4().hex}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url(self, key: str, expires: int = DEFAULT_URL_EXPIRY_SECONDS) -> str:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"{key} not found in {self.uri}")
        return path.as_uri()
