"""The S3 backend of the object store: a bucket (and optional prefix) on any S3 endpoint, through boto3."""

from __future__ import annotations

from typing import Any

from tasks.store import (
    DEFAULT_URL_EXPIRY_SECONDS,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    check_key,
)

_TRANSIENT_HTTP = {500, 502, 503, 504}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken"}


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
        return self.prefix + check_key(key)

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
