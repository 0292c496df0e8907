"""Fixtures shared by every layer: a real S3 HTTP endpoint (moto server), both store backends, real MNIST."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Endpoint:
    """A moto S3 server on a loopback port; `stop()`/`start()` simulate an outage."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def env(self) -> dict[str, str]:
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.url}

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    endpoint = S3Endpoint()
    endpoint.start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def s3_env(s3_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    """boto3's standard variables pointing at the test's endpoint, as a user would set them."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_endpoint.env().items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


@pytest.fixture(params=["local", "s3"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against both backends: a local folder and a bucket prefix on the S3 endpoint."""
    if request.param == "local":
        return str(tmp_path / "store")
    endpoint: S3Endpoint = request.getfixturevalue("s3_env")
    return f"s3://{endpoint.new_bucket()}/pipeline"


@pytest.fixture(scope="session")
def mnist() -> dict[str, np.ndarray]:
    """The real MNIST arrays from ../shared (skipped, naming it, when that folder is absent)."""
    path = SHARED_MNIST / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"real MNIST not available: {path} is absent (../shared/data/mnist is only in the dev checkout)")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(autouse=True)
def _no_stray_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's MNIST_STORE must never point a test at a real store
    monkeypatch.delenv("MNIST_STORE", raising=False)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
