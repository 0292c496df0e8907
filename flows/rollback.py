"""The rollback flow: make an earlier, complete version the champion, with a reason in the history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, runtime, task
from prefect.states import Failed, State
from pydantic import BaseModel, ConfigDict, Field

from flows.steps import STORE_IO
from tasks import registry
from tasks.config import resolve_store_uri
from tasks.store import open_store


class RollbackConfig(BaseModel):
    """Parameters of a rollback (the Prefect UI form and `mnist-pipeline rollback`'s options)."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=200, description="The version under models/ to make champion.")
    reason: str = Field(min_length=1, max_length=500, description="Why; recorded in models/history.jsonl.")
    store: str | None = Field(default=None, description="Store URI (default: $MNIST_STORE, else data/store).")


@task(name="rollback", **STORE_IO)  # type: ignore[call-overload]
def move_pointer_back(store_uri: str, to: str, reason: str, run_id: str) -> dict[str, Any] | str:
    """The new champion pointer, or the reason the rollback was refused (a refusal is an answer, not a crash)."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    try:
        return registry.rollback(open_store(store_uri), to, reason, run_id, at)
    except registry.RegistryError as refusal:
        return str(refusal)


@flow(name="rollback")
def rollback(config: RollbackConfig) -> dict[str, Any] | State:
    """Point models/champion.json at `config.to`; refuses unknown or incomplete versions."""
    run_id = str(runtime.flow_run.id or "local")
    pointer = move_pointer_back(resolve_store_uri(config.store), config.to, config.reason, run_id)
    if isinstance(pointer, str):
        return Failed(message=pointer)
    get_run_logger().info(f"champion is now {pointer['version']} ({pointer['reason']})")
    return pointer
