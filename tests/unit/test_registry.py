"""Registry operations on both backends: versions, rollback refusals and success, retention."""

from __future__ import annotations

import json

import pytest

from tasks.publish import CHAMPION_KEY, REQUIRED_FILES, move_champion, read_champion, read_history, version_key
from tasks.registry import RegistryError, apply_retention, list_versions, retention_plan, rollback
from tasks.store import Store, open_store


def publish_fake_version(store: Store, version: str, accuracy: float = 0.99, complete: bool = True) -> None:
    for name in REQUIRED_FILES if complete else REQUIRED_FILES[:1]:
        body = json.dumps({"accuracy": accuracy, "data": {"manifest_sha256": "d-" + version}}).encode()
        store.put(version_key(version, name), body)


def promote_fake(store: Store, version: str) -> None:
    _, etag = read_champion(store)
    current, _ = read_champion(store)
    pointer = {"version": version, "accuracy": 0.99, "promoted_at": "t", "reason": "test", "run_id": "r"}
    move_champion(store, pointer, etag, "promote", current["version"] if current else None)


def test_rollback_moves_the_pointer_and_records_history(store_uri: str) -> None:
    store = open_store(store_uri)
    for version in ("v1", "v2"):
        publish_fake_version(store, version)
        promote_fake(store, version)
    pointer = rollback(store, "v1", "v2 misreads sevens", "run-9", "2026-11-24T03:00:00Z")
    assert pointer["version"] == "v1" and pointer["reason"] == "rollback: v2 misreads sevens"
    assert json.loads(store.get(CHAMPION_KEY))["version"] == "v1"
    history = read_history(store)
    assert [(h["action"], h["from"], h["to"]) for h in history] == [
        ("promote", None, "v1"),
        ("promote", "v1", "v2"),
        ("rollback", "v2", "v1"),
    ]
    assert history[-1]["reason"] == "rollback: v2 misreads sevens" and history[-1]["run_id"] == "run-9"
    assert store.get("reports/latest.html") == store.get(version_key("v1", "report.html"))


@pytest.mark.parametrize(
    ("target", "reason", "message"),
    [
        ("v404", "why", "unknown version 'v404'"),
        ("broken", "why", "incomplete (missing"),
        ("v2", "why", "already the champion"),
        ("v1", "  ", "needs --reason"),
    ],
)
def test_rollback_refusals_change_nothing(store_uri: str, target: str, reason: str, message: str) -> None:
    store = open_store(store_uri)
    for version in ("v1", "v2"):
        publish_fake_version(store, version)
        promote_fake(store, version)
    publish_fake_version(store, "broken", complete=False)
    before = store.get(CHAMPION_KEY)
    with pytest.raises(RegistryError, match=message.replace("(", r"\(")):
        rollback(store, target, reason, "run", "t")
    assert store.get(CHAMPION_KEY) == before and len(read_history(store)) == 2


def test_retention_keeps_newest_and_former_champions_and_dry_run_deletes_nothing(store_uri: str) -> None:
    store = open_store(store_uri)
    versions = [f"2026112{i}T000000000Z-run" for i in range(7)]
    for version in versions:
        publish_fake_version(store, version)
    promote_fake(store, versions[1])
    promote_fake(store, versions[3])
    plan = retention_plan(store, keep_last=2)
    assert plan.keep == (versions[1], versions[3], versions[5], versions[6])
    assert plan.delete == (versions[0], versions[2], versions[4])
    assert plan.reasons[versions[3]] == "current champion" and plan.reasons[versions[1]] == "was champion"
    assert list_versions(store) == versions  # planning alone deletes nothing
    deleted = apply_retention(store, plan)
    assert deleted == 3 * len(REQUIRED_FILES)
    assert list_versions(store) == [versions[1], versions[3], versions[5], versions[6]]
    with pytest.raises(RegistryError):
        retention_plan(store, keep_last=0)


def test_two_publishes_racing_for_the_pointer_exactly_one_wins(store_uri: str) -> None:
    import threading

    from tasks.assess import EvaluationRecord
    from tasks.config import RunConfig
    from tasks.gate import ModelEvidence
    from tasks.release import RunInfo, promote

    store = open_store(store_uri)
    publish_fake_version(store, "v1")
    promote_fake(store, "v1")
    pointer, etag = read_champion(store)
    robust = {"clean": 0.99, "shift": 0.95, "noise": 0.98}
    champion = ModelEvidence("v1", 0.99, (0.99,) * 10, robust)
    verdicts: dict[str, dict] = {}

    def contender(version: str) -> None:
        publish_fake_version(store, version)
        evaluated = EvaluationRecord(
            metrics={}, predictions_key="", n_holdout=100, holdout_source="supplied", leaked_dropped=0,
            challenger=ModelEvidence(version, 0.995, (0.995,) * 10, robust), champion=champion,
            champion_metrics=None, champion_predictions_key=None, paired=None,
            champion_pointer=pointer, champion_etag=etag,
        )  # fmt: skip
        run = RunInfo(f"run-{version}", version, "2026-11-24T03:00:00Z", RunConfig().model_dump())
        metrics = {"accuracy": 0.995, "data": {"manifest_sha256": "d"}}
        verdicts[version] = promote(open_store(store_uri), run, metrics, evaluated)

    threads = [threading.Thread(target=contender, args=(v,)) for v in ("v2a", "v2b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    winners = [v for v, verdict in verdicts.items() if verdict["promoted"]]
    assert len(winners) == 1
    loser = next(v for v in verdicts if v not in winners)
    assert "champion changed to" in verdicts[loser]["reasons"][0]
    assert json.loads(store.get(version_key(loser, "verdict.json")))["promoted"] is False
    assert read_champion(store)[0]["version"] == winners[0]
    assert [(h["from"], h["to"]) for h in read_history(store)] == [(None, "v1"), ("v1", winners[0])]


def test_abandoned_checkpoints_are_found_by_age_and_deleted_whole(store_uri: str) -> None:
    from datetime import UTC, datetime, timedelta

    from tasks.checkpoint import abandoned_checkpoints
    from tasks.store import delete_folder

    store = open_store(store_uri)
    now = datetime.now(UTC)
    for folder, age in (("old", timedelta(days=3)), ("fresh", timedelta(hours=2))):
        store.put(f"checkpoints/{folder}/epoch-0002.keras", b"model")
        state = {"epochs_done": 2, "saved_at": (now - age).isoformat(timespec="seconds")}
        store.put(f"checkpoints/{folder}/state.json", json.dumps(state).encode())
    store.put("checkpoints/starting/epoch-0001.keras", b"model")  # no state.json yet: a training in its first epoch

    abandoned = abandoned_checkpoints(store, now)
    assert list(abandoned) == ["checkpoints/old/"]
    assert delete_folder(store, "checkpoints/old/") == 2
    left = sorted(info.key for info in store.list("checkpoints/"))
    assert left == [
        "checkpoints/fresh/epoch-0002.keras",
        "checkpoints/fresh/state.json",
        "checkpoints/starting/epoch-0001.keras",
    ]


def test_a_checkpoint_killed_before_its_first_state_is_abandoned_by_its_files_age(store_uri: str) -> None:
    from datetime import UTC, datetime, timedelta

    from tasks.checkpoint import abandoned_checkpoints

    store = open_store(store_uri)
    store.put("checkpoints/dead/epoch-0001.keras", b"model")  # killed between the model and its state.json
    store.put("checkpoints/corrupt/epoch-0001.keras", b"model")
    store.put("checkpoints/corrupt/state.json", b"{not json")
    written = store.head("checkpoints/dead/epoch-0001.keras").modified
    assert written is not None and abs(datetime.now(UTC) - written) < timedelta(minutes=5)

    assert abandoned_checkpoints(store, datetime.now(UTC)) == {}  # may still be in its first epoch
    two_days_on = abandoned_checkpoints(store, datetime.now(UTC) + timedelta(days=2))
    assert list(two_days_on) == ["checkpoints/corrupt/", "checkpoints/dead/"]
    assert datetime.fromisoformat(two_days_on["checkpoints/dead/"]) <= datetime.now(UTC)
