"""The store interface: the same behaviour on a local folder and on a real S3 endpoint."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import pytest

from tasks.s3_store import S3Store
from tasks.store import (
    LocalStore,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    is_transient_store_error,
    open_store,
)


def test_put_get_roundtrip_and_etag_matches(store_uri: str) -> None:
    store = open_store(store_uri)
    etag = store.put("models/v1/metrics.json", b'{"a": 1}', "application/json")
    data, read_etag = store.get_with_etag("models/v1/metrics.json")
    assert data == b'{"a": 1}'
    assert read_etag == etag
    assert store.exists("models/v1/metrics.json")
    assert not store.exists("models/v1/missing.json")
    assert store.head("models/v1/metrics.json").size == 8


def test_missing_key_raises_not_found(store_uri: str) -> None:
    store = open_store(store_uri)
    with pytest.raises(ObjectNotFound, match=r"nothing\.bin"):
        store.get("nothing.bin")
    with pytest.raises(ObjectNotFound):
        store.url("nothing.bin")


def test_list_is_sorted_recursive_and_prefix_filtered(store_uri: str) -> None:
    store = open_store(store_uri)
    for key in ("incoming/b.csv", "incoming/a/deep/c.csv", "incoming/holdout/h.csv", "models/x.json"):
        store.put(key, key.encode())
    listed = [info.key for info in store.list("incoming/")]
    assert listed == ["incoming/a/deep/c.csv", "incoming/b.csv", "incoming/holdout/h.csv"]
    assert all(info.fingerprint for info in store.list("incoming/"))
    assert open_store(store_uri).list("nothing/") == []


def test_fingerprint_changes_with_content(store_uri: str) -> None:
    store = open_store(store_uri)
    store.put("incoming/a.csv", b"one")
    before = store.head("incoming/a.csv").fingerprint
    store.put("incoming/a.csv", b"two, longer")
    assert store.head("incoming/a.csv").fingerprint != before


def test_conditional_write_create_only_and_if_match(store_uri: str) -> None:
    store = open_store(store_uri)
    first = store.put_if("models/champion.json", b"v1", None)
    with pytest.raises(PreconditionFailed):
        store.put_if("models/champion.json", b"again", None)
    second = store.put_if("models/champion.json", b"v2", first)
    with pytest.raises(PreconditionFailed):
        store.put_if("models/champion.json", b"stale", first)
    assert store.get_with_etag("models/champion.json") == (b"v2", second)


def test_racing_conditional_writes_exactly_one_wins(store_uri: str) -> None:
    store = open_store(store_uri)
    etag = store.put("pointer.json", b"start")
    outcomes: list[str] = []

    def contender(name: str) -> None:
        try:
            open_store(store_uri).put_if("pointer.json", name.encode(), etag)
            outcomes.append("won")
        except PreconditionFailed:
            outcomes.append("lost")

    threads = [threading.Thread(target=contender, args=(f"writer-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]


def test_copy_is_byte_for_byte(store_uri: str) -> None:
    store = open_store(store_uri)
    payload = bytes(range(256)) * 10
    store.put("incoming/odd name (1).csv", payload)
    store.copy("incoming/odd name (1).csv", "quarantine/odd name (1).csv")
    assert store.get("quarantine/odd name (1).csv") == payload
    assert store.get("incoming/odd name (1).csv") == payload


def test_url_serves_the_object(store_uri: str) -> None:
    store = open_store(store_uri)
    store.put("reports/index.html", b"<h1>runs</h1>", "text/html")
    url = store.url("reports/index.html", expires=120)
    with urllib.request.urlopen(url, timeout=10) as response:  # file:// locally, presigned http(s) on S3
        assert response.read() == b"<h1>runs</h1>"


def test_delete(store_uri: str) -> None:
    store = open_store(store_uri)
    store.put("a/b.txt", b"x")
    store.delete("a/b.txt")
    assert not store.exists("a/b.txt")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", ""])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError, match="invalid store key"):
        LocalStore(tmp_path).put(key, b"x")


def test_open_store_chooses_backend_by_uri(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/some/prefix")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix/")
    for bad in ("gs://bucket", "s3://", "  "):
        with pytest.raises(StoreError):
            open_store(bad)


def test_local_partial_writes_are_invisible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / ".a.csv.partial-123").write_bytes(b"half")
    store.put("incoming/a.csv", b"whole")
    assert [info.key for info in store.list()] == ["incoming/a.csv"]


def test_s3_errors_are_classified(s3_env: object, monkeypatch: pytest.MonkeyPatch) -> None:
    missing_bucket = open_store("s3://no-such-bucket-here")
    with pytest.raises(StoreError, match="does not exist"):
        missing_bucket.list("incoming/")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    unreachable = open_store("s3://bucket")
    with pytest.raises(StoreUnavailable) as raised:
        unreachable.list("incoming/")
    assert is_transient_store_error(raised.value)
    assert not is_transient_store_error(StoreError("credentials refused"))
