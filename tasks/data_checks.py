"""Image-aware data checks: each accepted batch is compared with the data accepted before it.

The reference is cheap by construction: every stored batch keeps a `BatchSummary` (counts on fixed bins) in
the manifest, and the reference is the sum of the earlier training batches' summaries, so no earlier batch is
ever re-read. Every record here is JSON-ready (ints, floats, strings, lists, None).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypedDict

import numpy as np

from tasks.dataset import image_digests

ChecksMode = Literal["warn", "fail"]  # "fail": an input failing a check is quarantined

N_CLASSES = 10
HISTOGRAM_BINS = 64  # fine fixed bins; PSI merges them into reference quantile groups
INK_THRESHOLD = 127  # a pixel brighter than mid-grey is ink (MNIST: light strokes on black)
BORDER = 2  # MNIST centres digits in 20×20 inside 28×28, so a 2-pixel frame is background
INVERTED_BORDER_MEAN = 127  # a brighter frame means a light background: dark ink on white paper

LABEL_P_VALUE_MIN = 0.001  # below it the label mix differs from the reference beyond sampling noise
MIN_ROWS_FOR_DRIFT = 200  # fewer rows (batch or reference) are too noisy for the comparisons to warn
PSI_GROUPS = 10  # PSI compares deciles of the reference
PSI_MAX = 0.25  # the usual "major shift" line for the population stability index
PSI_FLOOR = 1e-4  # share given to an empty group so PSI stays finite
MAX_DUPLICATE_FRACTION = 0.01


class BatchSummary(TypedDict):
    """What a batch contributes to the reference: counts only, so summaries add up."""

    rows: int
    labels: list[int]  # N_CLASSES counts
    mean_intensity: list[int]  # HISTOGRAM_BINS counts of each image's mean pixel over 0–256
    ink_fraction: list[int]  # HISTOGRAM_BINS counts of each image's share of ink pixels over 0–1
    blank: int  # images whose pixels are all the same value
    inverted: int  # non-blank images with a light background
    duplicates: int  # images identical to an earlier image of the same batch


_COUNTS = ("rows", "blank", "inverted", "duplicates")
_HISTOGRAMS = ("labels", "mean_intensity", "ink_fraction")


def empty_summary() -> BatchSummary:
    return BatchSummary(
        rows=0,
        labels=[0] * N_CLASSES,
        mean_intensity=[0] * HISTOGRAM_BINS,
        ink_fraction=[0] * HISTOGRAM_BINS,
        blank=0,
        inverted=0,
        duplicates=0,
    )


def _histogram(values: np.ndarray, top: float) -> list[int]:
    counts, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, top))
    return [int(c) for c in counts]


def summarize(images: np.ndarray, labels: np.ndarray) -> BatchSummary:
    """Summarizes a batch of (N, 28, 28) uint8 images and their (N,) labels."""
    flat = images.reshape(len(images), -1)
    lowest, highest = flat.min(axis=1, initial=255), flat.max(axis=1, initial=0)
    blank = lowest == highest
    frame = np.ones(images.shape[1:], dtype=bool)
    frame[BORDER:-BORDER, BORDER:-BORDER] = False
    inverted = ~blank & (images[:, frame].mean(axis=1) > INVERTED_BORDER_MEAN)
    digests = image_digests(images)
    return BatchSummary(
        rows=len(images),
        labels=[int(c) for c in np.bincount(labels, minlength=N_CLASSES)[:N_CLASSES]],
        mean_intensity=_histogram(flat.sum(axis=1, dtype=np.uint32) / flat.shape[1], 256.0),
        ink_fraction=_histogram((flat > INK_THRESHOLD).mean(axis=1), 1.0),
        blank=int(blank.sum()),
        inverted=int(inverted.sum()),
        duplicates=len(digests) - len(set(digests)),
    )


def combine(summaries: Iterable[BatchSummary]) -> BatchSummary:
    """The summary of the batches taken together (duplicates across batches are not counted)."""
    total = empty_summary()
    for summary in summaries:
        for count in _COUNTS:
            total[count] += summary[count]  # type: ignore[literal-required]
        for name in _HISTOGRAMS:
            total[name] = [a + b for a, b in zip(total[name], summary[name], strict=True)]  # type: ignore[literal-required]
    return total


def label_p_value(batch: list[int], reference: list[int]) -> float:
    """Chi-square test of homogeneity: the chance of label mixes this different if both came from one source."""
    # imported here: scipy.stats takes seconds to import and only runs once a reference exists
    from scipy.stats import chi2_contingency

    table = np.array([batch, reference], dtype=np.int64)
    table = table[:, table.sum(axis=0) > 0]  # a digit absent from both says nothing
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0  # one digit only, in both: nothing can differ
    return float(chi2_contingency(table).pvalue)


def psi(batch: list[int], reference: list[int], groups: int = PSI_GROUPS) -> float:
    """Population stability index of `batch` against `reference`, both counts on the same fixed bins.

    The fixed bins are merged into about `groups` groups holding equal shares of the reference (its
    quantiles), so PSI reads the same whatever the fixed bins' width; values below or above everything in
    the reference form two more groups, so a batch outside the reference's range cannot hide in its ends.
    """
    ref, new = np.asarray(reference, dtype=np.float64), np.asarray(batch, dtype=np.float64)
    cumulative = np.cumsum(ref) / ref.sum()
    # a bin joins the quantile group its cumulative share ends in (the epsilon absorbs rounding at the edges)
    group = np.clip(np.ceil(cumulative * groups - 1e-9), 1, groups).astype(np.int64)
    seen = np.flatnonzero(ref)
    group[: seen[0]], group[seen[-1] + 1 :] = 0, groups + 1
    ref_share = np.bincount(group, ref, groups + 2) / ref.sum()
    new_share = np.bincount(group, new, groups + 2) / new.sum()
    used = (ref_share > 0) | (new_share > 0)
    ref_share, new_share = np.maximum(ref_share[used], PSI_FLOOR), np.maximum(new_share[used], PSI_FLOOR)
    return float(np.sum((new_share - ref_share) * np.log(new_share / ref_share)))


def _share(count: int, total: int) -> str:
    return f"{count / total:.0%}" if total else "0%"


def _label_warning(batch: list[int], reference: list[int], p_value: float) -> str:
    n_batch, n_reference = sum(batch), sum(reference)
    gaps = [b / n_batch - r / n_reference for b, r in zip(batch, reference, strict=True)]
    digit = int(np.argmax(np.abs(gaps)))
    return (
        f"label mix differs from the data accepted so far (chi-square p = {p_value:.1e} < {LABEL_P_VALUE_MIN} "
        f"over {n_batch:,} rows): digit {digit} is {_share(batch[digit], n_batch)} of this batch but "
        f"{_share(reference[digit], n_reference)} before; check the labelling or how the batch was sampled"
    )


def _drift_warning(what: str, value: float, hint: str) -> str:
    return f"{what} distribution shifted from the data accepted so far (PSI {value:.2f} > {PSI_MAX}); {hint}"


def check_batch(batch: BatchSummary, reference: BatchSummary | None) -> dict[str, Any]:
    """Runs every check on a batch against the reference (None or empty: nothing to compare with yet).

    Returns:
        {"rows", "reference_rows", "labels": {"batch", "reference", "p_value"}, "mean_intensity_psi",
        "ink_fraction_psi", "blank_images", "inverted_images", "duplicate_images", "warnings"}; comparisons
        are None without a reference, and `warnings` holds one actionable line per failing check.
    """
    rows = batch["rows"]
    ref = reference if reference is not None and reference["rows"] > 0 and rows > 0 else None
    p_value = label_p_value(batch["labels"], ref["labels"]) if ref else None
    intensity_psi = psi(batch["mean_intensity"], ref["mean_intensity"]) if ref else None
    ink_psi = psi(batch["ink_fraction"], ref["ink_fraction"]) if ref else None

    warnings: list[str] = []
    if ref and min(rows, ref["rows"]) >= MIN_ROWS_FOR_DRIFT:  # smaller: recorded, never warned about
        if p_value is not None and p_value < LABEL_P_VALUE_MIN:
            warnings.append(_label_warning(batch["labels"], ref["labels"], p_value))
        if intensity_psi is not None and intensity_psi > PSI_MAX:
            hint = "check contrast, scaling (pixels 0–255) and background"
            warnings.append(_drift_warning("mean-intensity", intensity_psi, hint))
        if ink_psi is not None and ink_psi > PSI_MAX:
            hint = "check stroke width, resolution and thresholding"
            warnings.append(_drift_warning("ink-fraction", ink_psi, hint))
    if batch["blank"]:
        warnings.append(f"{batch['blank']:,} blank image(s): every pixel has the same value")
    if batch["inverted"]:
        warnings.append(
            f"{batch['inverted']:,} inverted image(s): light background (border mean > {INVERTED_BORDER_MEAN}); "
            "digits must be light ink on black, use 255 - pixel"
        )
    if rows and batch["duplicates"] / rows > MAX_DUPLICATE_FRACTION:
        warnings.append(
            f"{batch['duplicates']:,} duplicate image(s), {_share(batch['duplicates'], rows)} of the batch "
            f"(over {MAX_DUPLICATE_FRACTION:.0%}): was data uploaded twice or padded?"
        )
    return {
        "rows": rows,
        "reference_rows": ref["rows"] if ref else 0,
        "labels": {
            "batch": list(batch["labels"]),
            "reference": list(ref["labels"]) if ref else None,
            "p_value": p_value,
        },
        "mean_intensity_psi": intensity_psi,
        "ink_fraction_psi": ink_psi,
        "blank_images": batch["blank"],
        "inverted_images": batch["inverted"],
        "duplicate_images": batch["duplicates"],
        "warnings": warnings,
    }
