"""The promotion decision, as a plain function of figures: which model serves next.

This slice promotes every completed run (the champion/challenger rules arrive with their own issue); the
verdict still records the figures a person needs to see what changed.
"""

from __future__ import annotations

from typing import Any


def judge(
    challenger_version: str,
    challenger_accuracy: float,
    champion: dict[str, Any] | None,
    *,
    force_promote: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Decide whether the challenger becomes champion; returns the contract's `verdict.json` body."""
    champion_accuracy = float(champion["accuracy"]) if champion else None
    gate = {
        "policy": "promote-every-completed-run",
        "challenger_accuracy": challenger_accuracy,
        "champion_accuracy": champion_accuracy,
        "delta_vs_champion": None if champion_accuracy is None else challenger_accuracy - champion_accuracy,
        "force_promote": force_promote,
    }
    promoted = True
    if champion is not None and str(champion["version"]) > challenger_version:
        # version names sort by creation time: a newer model won the race while this one was judged
        promoted = False
        reasons = [f"newer version {champion['version']} became champion while this run was judged"]
    elif force_promote:
        reasons = [f"promotion forced: {reason}"]
    elif champion is None:
        reasons = [f"first model: no champion yet; holdout accuracy {challenger_accuracy:.2%}"]
    else:
        assert champion_accuracy is not None
        reasons = [
            f"completed run replaces champion {champion['version']}: holdout accuracy "
            f"{challenger_accuracy:.2%} vs {champion_accuracy:.2%} recorded at its promotion"
        ]
    return {
        "promoted": promoted,
        "reasons": reasons,
        "champion_before": champion["version"] if champion else None,
        "gate": gate,
    }
