"""PNG charts that compare: challenger against champion, confidence against accuracy, new data against old.

Same rules as ``tasks.charts``: each function builds its own ``Figure`` and renders it with the Agg canvas,
never through pyplot, so the functions are thread-safe and importing this module has no side effects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tasks.charts import BAD_COLOUR, CHART_WIDTH, OK_COLOUR, TRAIN_COLOUR, VAL_COLOUR, heatmap_png, message_png, to_png

MUTED_COLOUR = "#5f6368"


def confusion_difference_png(difference: Sequence[Sequence[int]]) -> bytes:
    """Challenger-minus-champion confusion counts, coloured by whether each change is an improvement.

    A rise on the diagonal (more digits right) and a fall off it (fewer of that mistake) are both good,
    so the colour follows the sign of the improvement (green better, red worse) while the cell text
    keeps the raw count difference.

    Args:
        difference: 10×10 ``challenger_cm - champion_cm`` on the same holdout.
    """
    diff = np.asarray(difference, dtype=np.int64)
    if diff.ndim != 2 or diff.shape[0] != diff.shape[1] or diff.size == 0:
        return message_png("Challenger minus champion", "not available")
    sign = np.where(np.eye(diff.shape[0], dtype=bool), 1, -1)
    improvement = diff * sign
    # Zero cells stay blank so the few cells that moved stand out.
    text = np.array([[f"{value:+d}" if value else "" for value in row] for row in diff.tolist()], dtype=object)
    limit = float(max(1, int(np.abs(diff).max())))
    return heatmap_png(
        improvement,
        "Challenger minus champion",
        "d",
        "RdYlGn",
        annotations=text,
        limit=limit,
        colourbar_label="worse ←  → better",
    )


def reliability_png(calibration: Mapping[str, Any], champion: Mapping[str, Any] | None = None) -> bytes:
    """Reliability diagram: accuracy against confidence per bin, over how many digits fall in each bin.

    Args:
        calibration: ``tasks.calibration.calibration_summary`` output of the challenger.
        champion: The same for the champion on the same holdout, drawn as a line; ``None`` to omit.
    """
    bins = [b for b in calibration.get("bins") or [] if isinstance(b, Mapping)]
    if not bins:
        return message_png("Reliability diagram", "not available")
    lower = np.array([float(b.get("lower", 0.0)) for b in bins])
    upper = np.array([float(b.get("upper", 1.0)) for b in bins])
    counts = np.array([int(b.get("count") or 0) for b in bins])
    accuracy = np.array([np.nan if b.get("accuracy") is None else float(b["accuracy"]) for b in bins])
    confidence = np.array([np.nan if b.get("confidence") is None else float(b["confidence"]) for b in bins])
    filled = counts > 0

    fig = Figure(figsize=(CHART_WIDTH, 4.9))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    widths = upper - lower
    top.bar(lower[filled], accuracy[filled], width=widths[filled], align="edge", color=TRAIN_COLOUR,
            edgecolor="white", alpha=0.85, label="accuracy in bin")  # fmt: skip
    # The gap between a bin's mean confidence and its accuracy is what the ECE averages.
    top.bar(lower[filled], confidence[filled] - accuracy[filled], bottom=accuracy[filled], width=widths[filled],
            align="edge", color="none", edgecolor=BAD_COLOUR, hatch="///", linewidth=0.8,
            label="gap to mean confidence")  # fmt: skip
    top.plot([0, 1], [0, 1], linestyle="--", color=MUTED_COLOUR, linewidth=1, label="perfect calibration")
    ece = calibration.get("ece")
    title = "Reliability diagram" + (f" (ECE {float(ece):.2%})" if isinstance(ece, int | float) else "")
    if champion is not None:
        points = [
            (float(b["confidence"]), float(b["accuracy"]))
            for b in champion.get("bins") or []
            if isinstance(b, Mapping) and b.get("count") and b.get("confidence") is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            top.plot(xs, ys, marker="o", markersize=3, color=VAL_COLOUR, label="champion")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy", fontsize=11)
    # Legend in its own rows above the axes: sparse low-confidence bins can sit anywhere inside them.
    top.set_title(title, fontsize=12, pad=40)
    top.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    top.grid(alpha=0.3)
    bottom.bar(lower, np.maximum(counts, 0), width=widths, align="edge", color=MUTED_COLOUR, edgecolor="white")
    # Nearly every digit of a good model sits in the top bin; a log scale keeps the others visible.
    if counts.max() > 0:
        bottom.set_yscale("log")
    bottom.set_xlabel("confidence (top-class probability)", fontsize=11)
    bottom.set_ylabel("digits", fontsize=11)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.83, hspace=0.08)
    return to_png(fig)


def grouped_bars_png(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    ylabel: str,
    *,
    percent: bool = True,
) -> bytes:
    """Bars per group, one colour per series, each labelled with its value.

    Args:
        groups: Category names along the x axis.
        series: Legend name to one value per group; ``None`` leaves a gap.
        title: Figure title.
        ylabel: Y axis label.
        percent: Label bars as percentages of 1 rather than plain numbers.
    """
    if not groups or not series:
        return message_png(title, "not available")
    colours = [TRAIN_COLOUR, VAL_COLOUR, OK_COLOUR, BAD_COLOUR]
    fig = Figure(figsize=(CHART_WIDTH, 3.4))
    ax = fig.subplots()
    positions = np.arange(len(groups))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        heights = np.array([np.nan if v is None else float(v) for v in values])
        bars = ax.bar(positions + (i - (len(series) - 1) / 2) * width, np.nan_to_num(heights), width=width,
                      color=colours[i % len(colours)], label=name)  # fmt: skip
        if len(groups) <= 5:  # values on each bar only while they fit
            labels = ["" if np.isnan(h) else (f"{h:.1%}" if percent else f"{h:,.0f}") for h in heights]
            ax.bar_label(bars, labels=labels, fontsize=8, padding=2)
    ax.set_xticks(positions, [str(g) for g in groups], fontsize=10)
    ax.set_ylabel(ylabel, fontsize=11)
    # The legend sits in its own row between the title and the axes, so it never covers a bar.
    ax.set_title(title, fontsize=12, pad=24)
    ax.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(series), frameon=False)
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.1, top=0.84)
    return to_png(fig)


def robustness_png(robustness: Mapping[str, Any]) -> bytes:
    """Holdout accuracy under each perturbation the gate tried, challenger next to champion.

    Args:
        robustness: ``{"challenger": {condition: accuracy}, "champion": {condition: accuracy} | None}``.
    """
    challenger = robustness.get("challenger")
    if not isinstance(challenger, Mapping) or not challenger:
        return message_png("Robustness", "not available")
    conditions = [str(name) for name in challenger]
    series: dict[str, list[float | None]] = {"challenger": [_number(challenger[c]) for c in conditions]}
    champion = robustness.get("champion")
    if isinstance(champion, Mapping) and champion:
        series["champion"] = [_number(champion.get(c)) for c in conditions]
    return grouped_bars_png(conditions, series, "Accuracy under perturbation", "holdout accuracy")


def label_histogram_png(new: Sequence[int], reference: Sequence[int] | None) -> bytes:
    """Share of each digit in this run's accepted training inputs against the reference data.

    Shares rather than counts, because a 500-row batch and a 50,000-row reference only compare as
    proportions.
    """
    if not new or sum(new) <= 0:
        return message_png("Labels: new vs reference", "not available")
    series: dict[str, list[float | None]] = {"new this run": _shares(new)}
    if reference and sum(reference) > 0:
        series["reference"] = _shares(reference)
    digits = [str(d) for d in range(len(new))]
    return grouped_bars_png(digits, series, "Labels: new vs reference", "share of rows", percent=True)


def _shares(counts: Sequence[int]) -> list[float | None]:
    total = float(sum(counts))
    return [float(c) / total for c in counts]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
