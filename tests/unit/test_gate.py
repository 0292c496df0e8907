"""The champion/challenger gate, table-driven on plain figures (no Prefect, no models)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.gate import GateThresholds, ModelEvidence, Paired, judge, mcnemar, reject_for_race
from tasks.robustness import SHIFTS, noisy, predict_with_robustness, robustness_accuracies, shifted

RECALL = (0.99,) * 10
ROBUST = {"clean": 0.990, "shift": 0.950, "noise": 0.980}


def evidence(version: str = "v2", accuracy: float = 0.990, recall=RECALL, robustness=ROBUST) -> ModelEvidence:
    return ModelEvidence(version, accuracy, tuple(recall), dict(robustness))


CHAMPION = evidence("v1")
EVEN = Paired(challenger_only_correct=10, champion_only_correct=10, p_value=1.0)


@pytest.mark.parametrize(
    ("case", "challenger", "champion", "paired", "promoted", "failing"),
    [
        ("first run above floor", evidence(accuracy=0.985), None, None, True, []),
        ("first run below floor", evidence(accuracy=0.975), None, None, False, ["floor"]),
        ("equal to champion", evidence(), CHAMPION, EVEN, True, []),
        ("small regression within tolerance", evidence(accuracy=0.9895), CHAMPION, EVEN, True, []),
        ("regression beyond tolerance", evidence(accuracy=0.9885), CHAMPION, EVEN, False, ["no-regression"]),
        ("below floor even if better", evidence(accuracy=0.97), evidence("v1", 0.96), EVEN, False, ["floor"]),
        (
            "one digit's recall collapses",
            evidence(recall=(0.99,) * 9 + (0.97,)),
            CHAMPION,
            EVEN,
            False,
            ["per-class-recall"],
        ),
        ("recall drop within tolerance", evidence(recall=(0.99,) * 9 + (0.985,)), CHAMPION, EVEN, True, []),
        ("champion significantly better", evidence(), CHAMPION, Paired(5, 30, 0.00002), False, ["mcnemar"]),
        ("challenger significantly better", evidence(), CHAMPION, Paired(30, 5, 0.00002), True, []),
        (
            "brittle under shifts",
            evidence(robustness={"clean": 0.99, "shift": 0.90, "noise": 0.98}),
            CHAMPION,
            EVEN,
            False,
            ["robustness"],
        ),
        (
            "several rules fail at once",
            evidence(accuracy=0.95, recall=(0.9,) * 10),
            CHAMPION,
            Paired(1, 200, 1e-40),
            False,
            ["floor", "no-regression", "per-class-recall", "mcnemar"],
        ),
    ],
)
def test_gate_rules(case, challenger, champion, paired, promoted, failing) -> None:
    verdict = judge(challenger, champion, paired, GateThresholds())
    assert verdict["promoted"] is promoted, case
    failed = [rule["name"] for rule in verdict["gate"]["rules"] if not rule["passed"]]
    assert failed == failing, case
    if not promoted:
        assert [reason.split(":")[0] for reason in verdict["reasons"]] == failing
    assert verdict["champion_before"] == (champion.version if champion else None)
    assert set(verdict) >= {"promoted", "reasons", "champion_before", "gate"}


def test_first_run_applies_the_floor_only() -> None:
    verdict = judge(evidence(accuracy=0.99), None)
    assert [rule["name"] for rule in verdict["gate"]["rules"]] == ["floor"]
    assert verdict["reasons"][0].startswith("first model")
    assert verdict["gate"]["champion_accuracy"] is None and verdict["gate"]["mcnemar"] is None


def test_thresholds_are_configurable() -> None:
    strict = GateThresholds(floor=0.995)
    assert not judge(evidence(accuracy=0.99), None, None, strict)["promoted"]
    lenient = GateThresholds(max_regression_pp=5.0, max_class_recall_drop_pp=5.0)
    assert judge(evidence(accuracy=0.98, recall=(0.97,) * 10), CHAMPION, EVEN, lenient)["promoted"]


def test_forced_promotion_records_reason_and_what_it_overrode() -> None:
    verdict = judge(evidence(accuracy=0.5), CHAMPION, EVEN, force_promote=True, reason="hotfix <b>now</b>")
    assert verdict["promoted"] and verdict["gate"]["force_promote"]
    assert verdict["reasons"][0] == "promotion forced: hotfix <b>now</b>"
    assert any(reason.startswith("overridden: floor") for reason in verdict["reasons"])


def test_race_rejection_names_both_champions() -> None:
    verdict = reject_for_race(judge(evidence(), CHAMPION, EVEN), "v9")
    assert not verdict["promoted"] and "v9" in verdict["reasons"][0] and "v1" in verdict["reasons"][0]


def test_mcnemar_counts_discordant_pairs() -> None:
    challenger = np.array([1, 1, 1, 0, 0, 1] * 10, bool)
    champion = np.array([1, 0, 0, 1, 0, 1] * 10, bool)
    paired = mcnemar(challenger, champion)
    assert (paired.challenger_only_correct, paired.champion_only_correct) == (20, 10)
    assert 0.05 < paired.p_value < 0.15  # exact binomial, two-sided: 0.0987
    assert mcnemar(challenger, challenger).p_value == 1.0


def test_perturbations() -> None:
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10, 10] = 255
    assert shifted(image, 2, 0)[0, 12, 10] == 255 and shifted(image, 0, -2)[0, 10, 8] == 255
    assert shifted(image, 2, 0).sum() == image.sum()
    edge = np.zeros((1, 28, 28), np.uint8)
    edge[0, 27, 0] = 255
    assert shifted(edge, 2, 0).sum() == 0  # pushed out, background comes in
    assert np.array_equal(noisy(image, 3), noisy(image, 3)) and not np.array_equal(noisy(image, 3), image)
    perfect = robustness_accuracies(lambda batch: np.eye(10)[np.zeros(len(batch), int)], image, np.array([0]))
    assert perfect == {"clean": 1.0, "shift": 1.0, "noise": 1.0}


def test_robustness_predicts_every_variant_in_one_call_and_returns_the_clean_probabilities() -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), np.arange(7) % 10
    calls: list[int] = []

    def by_mean_ink(batch: np.ndarray) -> np.ndarray:  # a deterministic stand-in model
        calls.append(len(batch))
        return np.eye(10)[(batch.reshape(len(batch), -1).mean(axis=1) > 127).astype(int)]

    probabilities, accuracies = predict_with_robustness(by_mean_ink, images, labels, seed=3)
    assert calls == [7 * 6]  # clean, four shifts and noise in one pass
    assert np.array_equal(probabilities, by_mean_ink(images))
    assert accuracies["clean"] == float((by_mean_ink(images).argmax(1) == labels).mean())
    expected_shift = np.mean([(by_mean_ink(shifted(images, dy, dx)).argmax(1) == labels).mean() for dy, dx in SHIFTS])
    assert accuracies["shift"] == pytest.approx(expected_shift)
    assert accuracies["noise"] == float((by_mean_ink(noisy(images, 3)).argmax(1) == labels).mean())
