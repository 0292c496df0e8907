"""Object store with one interface and two backends: a local folder and S3 (any endpoint) via boto3.

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
_TRANSIENT_HTTP = {500, 502, 503, 504}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken"}


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
        return S3Store(parsed.netloc, parsed.path.strip("/"))
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise StoreError(f"unsupported store URI {uri!r}: use a folder path, file:///path or s3://bucket[/prefix]")
    return LocalStore(Path(uri))


def _check_key(key: str) -> str:
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
        return self.root / _check_key(key)

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


class S3Store:
    """A bucket (and optional prefix) on any S3 endpoint, configured by boto3's standard variables."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # botocore's own retries bridge blips; the flow's task retries bridge longer outages
            config = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5, read_timeout=60)
            self._client = boto3.session.Session().client("s3", config=config)
        return self._client

    def _full(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def _call(self, key: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except NoCredentialsError:
            raise StoreError(
                f"no S3 credentials for {self.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        except ClientError as exc:
            raise _translate_client_error(exc, self.uri, key) from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"S3 endpoint unreachable for {self.uri}: {exc}") from None

    def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        response = self._call(key, "put_object", Key=self._full(key), Body=data, **extra)
        return str(response["ETag"]).strip('"')

    def get(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        response = self._call(key, "get_object", Key=self._full(key))
        return response["Body"].read(), str(response["ETag"]).strip('"')

    def put_if(self, key: str, data: bytes, if_match: str | None, content_type: str | None = None) -> str:
        condition = {"IfNoneMatch": "*"} if if_match is None else {"IfMatch": f'"{if_match}"'}
        extra = {"ContentType": content_type} if content_type else {}
        response = self._call(key, "put_object", Key=self._full(key), Body=data, **condition, **extra)
        return str(response["ETag"]).strip('"')

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def head(self, key: str) -> ObjectInfo:
        response = self._call(key, "head_object", Key=self._full(key))
        etag = str(response["ETag"]).strip('"')
        return ObjectInfo(key, int(response["ContentLength"]), etag, response.get("LastModified"))

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        kwargs: dict[str, Any] = {"Prefix": self.prefix + prefix}
        while True:
            response = self._call(prefix, "list_objects_v2", **kwargs)
            for item in response.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                etag = str(item["ETag"]).strip('"')
                found.append(ObjectInfo(key, int(item["Size"]), etag, item.get("LastModified")))
            if not response.get("IsTruncated"):
                return sorted(found, key=lambda info: info.key)
            kwargs["ContinuationToken"] = response["NextContinuationToken"]

    def copy(self, source: str, destination: str) -> None:
        # server-side copy: a large rejected input is never pulled through this machine
        source_ref = {"Bucket": self.bucket, "Key": self._full(source)}
        self._call(source, "copy_object", Key=self._full(destination), CopySource=source_ref)

    def delete(self, key: str) -> None:
        self._call(key, "delete_object", Key=self._full(key))

    def url(self, key: str, expires: int = DEFAULT_URL_EXPIRY_SECONDS) -> str:
        self.head(key)  # a presigned URL for a missing object would only fail later, in a browser
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=expires
            )
        )


def _translate_client_error(exc: Any, uri: str, key: str) -> StoreError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in ("NoSuchKey", "404", "NotFound"):
        return ObjectNotFound(f"{key} not found in {uri}")
    if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
        return PreconditionFailed(f"{key} changed concurrently in {uri} ({code or status})")
    if code == "NoSuchBucket":
        return StoreError(f"bucket of {uri} does not exist: create it first")
    if code in _CREDENTIAL_CODES or status == 403:
        return StoreError(f"S3 refused the credentials for {uri} ({code or status}): check AWS_* variables")
    if code in _TRANSIENT_CODES or status in _TRANSIENT_HTTP:
        return StoreUnavailable(f"S3 endpoint error for {uri} ({code or status}); retry later")
    return StoreError(f"S3 error on {key} in {uri}: {code or status} {error.get('Message', '')}".strip())
