"""The model registry in the bucket: versions, rollback and retention (MLflow's aliases, with history)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tasks.publish import (
    LATEST_KEY,
    MODELS,
    missing_files,
    move_champion,
    read_champion,
    read_history,
    version_key,
)
from tasks.store import PreconditionFailed, Store, delete_folder


class RegistryError(Exception):
    """A registry request that cannot be honoured as asked (message is one line a person can act on)."""


@dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[str, ...]
    delete: tuple[str, ...]
    reasons: dict[str, str]  # why each kept version is kept


def list_versions(store: Store) -> list[str]:
    """Every version folder under models/, oldest first (names sort by creation time)."""
    versions = {info.key[len(MODELS) :].split("/", 1)[0] for info in store.list(MODELS) if info.key.count("/") >= 2}
    return sorted(versions)


def rollback(store: Store, to: str, reason: str, run_id: str, at: str) -> dict[str, Any]:
    """Make an earlier, complete version the champion; recorded in the history with the reason.

    Raises:
        RegistryError: unknown or incomplete version, empty reason, or already the champion.
    """
    if not reason.strip():
        raise RegistryError("a rollback needs --reason TEXT: say why")
    versions = list_versions(store)
    if to not in versions:
        recent = ", ".join(versions[-5:]) or "none yet"
        raise RegistryError(f"unknown version {to!r} in {store.uri}; most recent: {recent}")
    missing = missing_files(store, to)
    if missing:
        raise RegistryError(f"version {to} is incomplete (missing {', '.join(missing)}); refusing to roll back to it")
    current, etag = read_champion(store)
    if current is not None and current["version"] == to:
        raise RegistryError(f"{to} is already the champion")
    metrics = json.loads(store.get(version_key(to, "metrics.json")))
    pointer = {
        "version": to,
        "accuracy": metrics["accuracy"],
        "promoted_at": at,
        "reason": f"rollback: {reason}",
        "run_id": run_id,
        "data_digest": metrics.get("data", {}).get("manifest_sha256"),
    }
    try:
        move_champion(store, pointer, etag, "rollback", current["version"] if current else None)
    except PreconditionFailed:
        raise RegistryError("the champion changed while rolling back; check models/champion.json and retry") from None
    store.copy(version_key(to, "report.html"), LATEST_KEY)
    return pointer


def retention_plan(store: Store, keep_last: int) -> RetentionPlan:
    """Keep the newest `keep_last` versions and every version that was ever champion; the rest may go."""
    if keep_last < 1:
        raise RegistryError("keep at least the newest version (keep_last ≥ 1)")
    versions = list_versions(store)
    reasons: dict[str, str] = {}
    for version in versions[-keep_last:]:
        reasons[version] = f"among the newest {keep_last}"
    for entry in read_history(store):
        for former in (entry.get("to"), entry.get("from")):
            if former:
                reasons.setdefault(str(former), "was champion")
    current, _ = read_champion(store)
    if current is not None:
        reasons[current["version"]] = "current champion"
    keep = tuple(v for v in versions if v in reasons)
    return RetentionPlan(keep, tuple(v for v in versions if v not in reasons), reasons)


def apply_retention(store: Store, plan: RetentionPlan) -> int:
    """Delete the files of the versions the plan lets go; re-checks the champion first. Returns files deleted."""
    current, _ = read_champion(store)
    deleted = 0
    for version in plan.delete:
        if current is not None and current["version"] == version:
            continue  # became champion (a rollback) after the plan was made
        deleted += delete_folder(store, f"{MODELS}{version}/")
    return deleted
