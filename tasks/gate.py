"""The champion/challenger gate: plain functions of figures measured on the same holdout in the same run.

Rules (each threshold configurable through the flow's parameters):
- floor: the challenger's accuracy must reach an absolute minimum;
- no regression beyond a tolerance vs the champion;
- per-class recall: no digit may drop by more than a tolerance vs the champion;
- McNemar: the champion must not be significantly better on the paired holdout predictions;
- robustness: accuracy under ±2-pixel shifts and light noise must not fall more than the champion's does,
  beyond a tolerance.
With no champion (first run) only the floor applies. A forced promotion records its reason and the figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PP = 100.0  # accuracy fractions are shown and configured in percentage points


@dataclass(frozen=True)
class GateThresholds:
    floor: float = 0.98
    max_regression_pp: float = 0.1
    max_class_recall_drop_pp: float = 1.0
    mcnemar_alpha: float = 0.05
    robustness_tolerance_pp: float = 0.5


@dataclass(frozen=True)
class ModelEvidence:
    """One model's figures on the holdout: accuracy, per-digit recall, and accuracy under perturbations."""

    version: str
    accuracy: float
    recall: tuple[float, ...]
    robustness: dict[str, float]  # {"clean": …, "shift": …, "noise": …}


@dataclass(frozen=True)
class Paired:
    """Discordant counts of the two models on the same holdout rows, with McNemar's exact p-value."""

    challenger_only_correct: int
    champion_only_correct: int
    p_value: float


@dataclass(frozen=True)
class RuleResult:
    name: str
    passed: bool
    detail: str


def mcnemar(challenger_correct: Any, champion_correct: Any) -> Paired:
    """McNemar's exact (binomial) test on paired correctness vectors."""
    import numpy as np
    from scipy.stats import binomtest

    challenger, champion = np.asarray(challenger_correct, bool), np.asarray(champion_correct, bool)
    b = int((challenger & ~champion).sum())
    c = int((~challenger & champion).sum())
    p_value = 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)
    return Paired(b, c, p_value)


def _robustness_drops(evidence: ModelEvidence) -> dict[str, float]:
    clean = evidence.robustness.get("clean", evidence.accuracy)
    return {name: clean - value for name, value in evidence.robustness.items() if name != "clean"}


def gate_rules(
    challenger: ModelEvidence, champion: ModelEvidence | None, paired: Paired | None, limits: GateThresholds
) -> list[RuleResult]:
    """Every rule's outcome, in a fixed order; only the floor when there is no champion."""
    rules = [
        RuleResult(
            "floor",
            challenger.accuracy >= limits.floor,
            f"accuracy {challenger.accuracy:.2%} vs floor {limits.floor:.2%}",
        )
    ]
    if champion is None:
        return rules
    delta_pp = (challenger.accuracy - champion.accuracy) * PP
    rules.append(
        RuleResult(
            "no-regression",
            delta_pp >= -limits.max_regression_pp,
            f"{delta_pp:+.2f} pp vs champion {champion.version} ({champion.accuracy:.2%}); "
            f"tolerance {limits.max_regression_pp:.2f} pp",
        )
    )
    drops = {
        digit: (old - new) * PP for digit, (new, old) in enumerate(zip(challenger.recall, champion.recall, strict=True))
    }
    worst = max(drops, key=lambda digit: drops[digit]) if drops else None
    rules.append(
        RuleResult(
            "per-class-recall",
            all(drop <= limits.max_class_recall_drop_pp for drop in drops.values()),
            "no digit's recall dropped"
            if worst is None or drops[worst] <= 0
            else f"largest recall drop: digit {worst} by {drops[worst]:.2f} pp; "
            f"tolerance {limits.max_class_recall_drop_pp:.2f} pp",
        )
    )
    if paired is not None:
        champion_better = paired.champion_only_correct > paired.challenger_only_correct
        rules.append(
            RuleResult(
                "mcnemar",
                not (champion_better and paired.p_value < limits.mcnemar_alpha),
                f"p={paired.p_value:.4f}; only challenger right on {paired.challenger_only_correct}, "
                f"only champion right on {paired.champion_only_correct}; alpha {limits.mcnemar_alpha}",
            )
        )
    ours, theirs = _robustness_drops(challenger), _robustness_drops(champion)
    extra = {name: (ours[name] - theirs[name]) * PP for name in ours if name in theirs}
    compared = [f"{name}: drop {ours[name] * PP:.2f} pp vs champion's {theirs[name] * PP:.2f} pp" for name in extra]
    rules.append(
        RuleResult(
            "robustness",
            all(value <= limits.robustness_tolerance_pp for value in extra.values()),
            ", ".join(compared) + f"; tolerance {limits.robustness_tolerance_pp:.2f} pp",
        )
    )
    return rules


def judge(
    challenger: ModelEvidence,
    champion: ModelEvidence | None,
    paired: Paired | None = None,
    limits: GateThresholds | None = None,
    *,
    force_promote: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Decide whether the challenger becomes champion; returns the contract's `verdict.json` body."""
    limits = limits or GateThresholds()
    rules = gate_rules(challenger, champion, paired, limits)
    failed = [rule for rule in rules if not rule.passed]
    if force_promote:
        reasons = [f"promotion forced: {reason}"] + [f"overridden: {r.name}: {r.detail}" for r in failed]
    elif failed:
        reasons = [f"{r.name}: {r.detail}" for r in failed]
    elif champion is None:
        reasons = [f"first model: no champion yet; {rules[0].detail}"]
    else:
        reasons = [f"beats champion {champion.version} on every rule: {rules[1].detail}"]
    return {
        "promoted": force_promote or not failed,
        "reasons": reasons,
        "champion_before": champion.version if champion else None,
        "gate": {
            "thresholds": asdict(limits),
            "floor": limits.floor,
            "challenger_accuracy": challenger.accuracy,
            "champion_accuracy": champion.accuracy if champion else None,
            "delta_vs_champion": None if champion is None else challenger.accuracy - champion.accuracy,
            "rules": [asdict(rule) for rule in rules],
            "mcnemar": asdict(paired) if paired else None,
            "robustness": {
                "challenger": challenger.robustness,
                "champion": champion.robustness if champion else None,
            },
            "force_promote": force_promote,
        },
    }


def reject_for_race(verdict: dict[str, Any], champion_now: str | None) -> dict[str, Any]:
    """The verdict when the champion moved between judging and promoting: never a lost update."""
    return {
        **verdict,
        "promoted": False,
        "reasons": [
            f"champion changed to {champion_now} while this run was judged against {verdict['champion_before']}; "
            "not promoted (run again to be judged against the new champion)"
        ],
    }
