"""Image-aware data checks: the pure functions, then through ingest (reference, warn and fail modes)."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from builders import digits, entries_by_key, npz_bytes

from tasks.data_checks import (
    HISTOGRAM_BINS,
    MIN_ROWS_FOR_DRIFT,
    N_CLASSES,
    check_batch,
    combine,
    label_p_value,
    psi,
    summarize,
)
from tasks.ingest import ingest
from tasks.manifest import load_manifest
from tasks.sample import digits_to_csv
from tasks.store import open_store

CHECK_KEYS = {
    "rows",
    "reference_rows",
    "labels",
    "mean_intensity_psi",
    "ink_fraction_psi",
    "blank_images",
    "inverted_images",
    "duplicate_images",
    "warnings",
}


def json_ready(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_ready(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_ready(v) for v in value)
    return value is None or type(value) in (int, float, str)


def test_summarize_counts_labels_histograms_and_odd_images() -> None:
    images, labels = digits(300)
    images[0], images[1] = 0, 255  # blank: every pixel the same
    images[2:5] = 255 - images[2:5]  # inverted: dark ink on white
    images[10:14] = images[20]  # four copies of another image

    summary = summarize(images, labels)

    assert summary["rows"] == 300 and summary["labels"] == np.bincount(labels, minlength=10).tolist()
    assert len(summary["mean_intensity"]) == len(summary["ink_fraction"]) == HISTOGRAM_BINS
    assert sum(summary["mean_intensity"]) == sum(summary["ink_fraction"]) == 300
    assert (summary["blank"], summary["inverted"], summary["duplicates"]) == (2, 3, 4)
    assert json_ready(dict(summary))


def test_summaries_add_up() -> None:
    (a, y_a), (b, y_b) = digits(50, seed=1), digits(70, seed=2)
    together = summarize(np.concatenate([a, b]), np.concatenate([y_a, y_b]))
    assert combine([summarize(a, y_a), summarize(b, y_b)]) == together
    assert combine([])["rows"] == 0


def test_without_a_reference_only_the_batch_is_recorded() -> None:
    record = check_batch(summarize(*digits(300)), None)
    assert set(record) == CHECK_KEYS and json_ready(record)
    assert record["reference_rows"] == 0 and record["labels"]["reference"] is None
    assert record["labels"]["p_value"] is record["mean_intensity_psi"] is record["ink_fraction_psi"] is None
    assert record["warnings"] == []
    assert check_batch(summarize(*digits(300)), combine([]))["labels"]["p_value"] is None


def test_a_batch_like_the_reference_passes() -> None:
    record = check_batch(summarize(*digits(500, seed=2)), summarize(*digits(3000, seed=1)))
    assert record["reference_rows"] == 3000 and len(record["labels"]["reference"]) == N_CLASSES
    assert record["labels"]["p_value"] > 0.05
    assert record["mean_intensity_psi"] < 0.1 and record["ink_fraction_psi"] < 0.1
    assert record["warnings"] == []
    assert json.loads(json.dumps(record)) == record and json_ready(record)


def test_a_skewed_label_mix_warns_once_the_batch_is_large_enough() -> None:
    reference = summarize(*digits(3000, seed=1))
    images, labels = digits(MIN_ROWS_FOR_DRIFT, seed=2)
    labels[: MIN_ROWS_FOR_DRIFT // 2] = 1  # half of the batch is a one
    record = check_batch(summarize(images, labels), reference)
    assert record["labels"]["p_value"] < 1e-6
    assert len(record["warnings"]) == 1 and "label mix differs" in record["warnings"][0]
    assert re.search(r"digit 1 is 5\d% of this batch but 10% before", record["warnings"][0])
    small = check_batch(summarize(images[:100], labels[:100]), reference)
    assert small["labels"]["p_value"] < 0.001 and small["warnings"] == []  # too few rows to mean much


def test_brighter_and_inkier_digits_drift() -> None:
    reference = summarize(*digits(3000, seed=1))
    images, labels = digits(400, seed=2)
    bold = images.copy()
    bold[:, 4:24, 4:24] = np.maximum(bold[:, 4:24, 4:24], 200)  # thick, bright strokes everywhere
    record = check_batch(summarize(bold, labels), reference)
    assert record["mean_intensity_psi"] > 0.25 and record["ink_fraction_psi"] > 0.25
    warnings = " | ".join(record["warnings"])
    assert "mean-intensity distribution shifted" in warnings and "ink-fraction distribution shifted" in warnings


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda x: x.__setitem__(0, 0), "1 blank image(s)"),
        (lambda x: x.__setitem__(slice(0, 2), 255 - x[0:2]), "2 inverted image(s)"),
        (lambda x: x.__setitem__(slice(0, 4), x[10]), "4 duplicate image(s), 1% of the batch"),
    ],
    ids=["blank", "inverted", "duplicates"],
)
def test_odd_images_warn(edit: Any, expected: str) -> None:
    images, labels = digits(300)
    edit(images)
    record = check_batch(summarize(images, labels), None)
    assert len(record["warnings"]) == 1 and record["warnings"][0].startswith(expected)


def test_a_few_duplicates_are_tolerated() -> None:
    images, labels = digits(300)
    images[:3] = images[10]  # 1% exactly
    record = check_batch(summarize(images, labels), None)
    assert record["duplicate_images"] == 3 and record["warnings"] == []


def test_psi_and_p_value_edges() -> None:
    counts = [0, 5, 30, 40, 20, 5] + [0] * (HISTOGRAM_BINS - 6)
    assert psi(counts, counts) == pytest.approx(0.0)
    assert psi([10 * c for c in counts], counts) == pytest.approx(0.0)  # shares matter, not sizes
    assert psi(counts[::-1], counts) > 1.0  # nothing where the reference was
    lumped = [0, 0, 100] + [0] * (HISTOGRAM_BINS - 3)  # every reference value in one bin
    assert psi(lumped, lumped) == pytest.approx(0.0) and psi(counts, lumped) > 0.25
    assert label_p_value([5] + [0] * 9, [7] + [0] * 9) == 1.0  # one digit only, in both
    assert label_p_value([10] * 10, [1000] * 10) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- through ingest


def skewed(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits(n, seed)
    labels[: n // 2] = 7
    return images, labels


def test_checks_are_recorded_and_the_reference_is_earlier_training_data(store_uri: str) -> None:
    store = open_store(store_uri)
    x, y = digits(700, seed=5)
    store.put("incoming/first.csv", digits_to_csv(x[:300], y[:300]))
    store.put("incoming/keras.npz", npz_bytes(x_train=x[300:500], y_train=y[300:500], x_test=x[500:], y_test=y[500:]))
    first = ingest(store, "run-1")

    for item in first.inputs:
        assert item.checks is not None and set(item.checks) == CHECK_KEYS and item.checks["reference_rows"] == 0
    entries = entries_by_key(store)
    assert entries["incoming/first.csv"]["checks"] == next(i.checks for i in first.inputs if i.key.endswith(".csv"))
    batches = load_manifest(store).batches()
    assert all(b.summary is not None and b.summary["rows"] == b.rows for b in batches)

    store.put("incoming/second.csv", digits_to_csv(*digits(250, seed=6)))
    (second,) = ingest(store, "run-2").inputs
    assert second.checks is not None
    assert second.checks["reference_rows"] == 500  # the training rows only: the npz's test part is holdout
    assert second.checks["labels"]["p_value"] > 0.001 and second.checks["warnings"] == []


def test_warn_mode_accepts_a_failing_batch_and_says_why(store_uri: str) -> None:
    store = open_store(store_uri)
    store.put("incoming/base.csv", digits_to_csv(*digits(1000, seed=1)))
    ingest(store, "run-1")
    store.put("incoming/skewed.csv", digits_to_csv(*skewed(400, seed=2)))
    (item,) = ingest(store, "run-2").inputs
    assert (item.outcome, item.rows_accepted) == ("accepted", 400)
    assert item.checks is not None and "label mix differs" in item.checks["warnings"][0]
    assert entries_by_key(store)["incoming/skewed.csv"]["checks"] == item.checks


def test_fail_mode_quarantines_a_failing_batch_and_keeps_the_rest(store_uri: str) -> None:
    store = open_store(store_uri)
    store.put("incoming/base.csv", digits_to_csv(*digits(1000, seed=1)))
    ingest(store, "run-1", data_checks="fail")
    skewed_csv = digits_to_csv(*skewed(400, seed=2))
    store.put("incoming/skewed.csv", skewed_csv)
    store.put("incoming/fine.csv", digits_to_csv(*digits(300, seed=3)))

    summary = ingest(store, "run-2", data_checks="fail")

    outcomes = {item.key: item for item in summary.inputs}
    assert outcomes["incoming/fine.csv"].outcome == "accepted"
    bad = outcomes["incoming/skewed.csv"]
    assert (bad.outcome, bad.rows_accepted, bad.rows_rejected) == ("quarantined", 0, 400)
    assert (bad.reason or "").startswith("failed the data checks (data_checks=fail): label mix differs")
    assert bad.checks is not None and bad.checks["warnings"]
    assert store.get("quarantine/skewed.csv") == skewed_csv
    record = json.loads(store.get("quarantine/skewed.csv.reason.json"))
    assert record["reason"] == bad.reason and record["errors"] == bad.checks["warnings"]
    assert entries_by_key(store)["incoming/skewed.csv"]["checks"] == bad.checks


def test_an_unknown_checks_mode_is_refused(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="'warn' or 'fail'"):
        ingest(open_store(str(tmp_path)), "run-1", data_checks="strict")
