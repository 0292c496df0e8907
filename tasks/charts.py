"""PNG charts for the model report, drawn from plain numbers and arrays.

Every function builds its own ``matplotlib.figure.Figure`` and renders it with the Agg canvas directly,
so nothing touches pyplot's global figure manager or backend selection: the functions are safe to call
from worker threads and importing this module has no side effects.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

DPI = 100
OK_COLOUR = "#1b7f3b"
BAD_COLOUR = "#b3261e"
TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#ff7f0e"
TILE_GAP = 6  # pixels between digit tiles in a grid
TILE_INCHES = 1.05  # width of one grid cell
CHART_WIDTH = 5.2  # inches: 520 px at DPI, legible on a phone, two a row on a laptop


def png_data_uri(png: bytes) -> str:
    """Return ``png`` as a ``data:image/png;base64,...`` URI for inlining in HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def to_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # Dropping the "Software" stamp makes the bytes depend only on the inputs, so reruns are diffable.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()


def message_png(title: str, message: str) -> bytes:
    fig = Figure(figsize=(4, 1.2))
    fig.text(0.5, 0.7, title, ha="center", va="center", fontsize=11, weight="bold")
    fig.text(0.5, 0.3, message, ha="center", va="center", fontsize=10, color="#5f6368")
    return to_png(fig)


def training_curves_png(history: dict[str, list[float]], best_epoch: int | None) -> bytes:
    """Plot accuracy and loss per epoch, train against validation.

    Args:
        history: Keras ``History.history``-style lists keyed by ``accuracy``, ``val_accuracy``, ``loss``
            and ``val_loss``; any key may be missing or empty.
        best_epoch: 1-based number of the epoch whose weights were kept, marked with a vertical line;
            ``None`` for no marker.

    Returns:
        PNG bytes of a figure with two panels (accuracy above loss).
    """
    # Panels stacked rather than side by side, and every chart about 520 px wide: a phone shrinks
    # it by a third at most, so the text stays readable, and a laptop shows two charts a row.
    fig = Figure(figsize=(CHART_WIDTH, 5.4))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, metric, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        plotted = False
        for key, label, colour in (
            (metric, "train", TRAIN_COLOUR),
            (f"val_{metric}", "validation", VAL_COLOUR),
        ):
            values = [float(v) for v in history.get(key) or []]
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, marker="o", markersize=3, color=colour, label=label)
                plotted = True
        if not plotted:
            # The x axis is shared, so only the y ticks go; the other panel keeps its epochs.
            ax.text(0.5, 0.5, "no history recorded", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
        else:
            if best_epoch is not None:
                ax.axvline(best_epoch, color="#5f6368", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9)
        ax.set_title(title, fontsize=12)
        ax.tick_params(labelsize=10)
    # Epochs are whole numbers; the default locator would put ticks at 2.5, 7.5, ...
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("epoch", fontsize=11)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.09, top=0.94, hspace=0.22)
    return to_png(fig)


def confusion_matrix_png(cm: Sequence[Sequence[int]], normalise: bool = False) -> bytes:
    """Draw the confusion matrix as an annotated heatmap.

    Args:
        cm: Square matrix, ``cm[true][predicted]`` = count.
        normalise: Divide each row by its total, so a cell is the share of that true digit (the diagonal
            is then each digit's recall).

    Returns:
        PNG bytes; a "not available" image when ``cm`` is not a non-empty square matrix.
    """
    title = "Row-normalised (share of each true digit)" if normalise else "Counts"
    counts = np.asarray(cm, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.size == 0:
        return message_png(f"Confusion matrix: {title.lower()}", "not available")
    row_totals = counts.sum(axis=1, keepdims=True)
    # A digit absent from the holdout has a zero row: show zeros rather than NaN.
    data = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0) if normalise else counts
    return heatmap_png(data, title, ".2f" if normalise else "d", "Greens" if normalise else "Blues")


def heatmap_png(
    data: np.ndarray,
    title: str,
    fmt: str,
    cmap: str,
    *,
    annotations: np.ndarray | None = None,
    limit: float | None = None,
    colourbar_label: str | None = None,
) -> bytes:
    """An annotated true-by-predicted heatmap, sized to stay legible when a phone scales it down.

    Args:
        data: Square matrix that sets the cell colours.
        title: Figure title.
        fmt: Format of the annotations when ``annotations`` is not given (``"d"``, ``".2f"``).
        cmap: Matplotlib colour map name.
        annotations: Optional matrix of strings written in the cells instead of ``data``.
        limit: For diverging maps: colours span ``-limit`` to ``+limit``, so zero is the middle colour.
        colourbar_label: Optional label of the colour bar.
    """
    # seaborn imports pyplot; importing it here keeps that cost and state out of module import.
    import seaborn as sns

    labels = [str(i) for i in range(data.shape[0])]
    fig = Figure(figsize=(CHART_WIDTH, 4.7))
    ax = fig.subplots()
    sns.heatmap(
        data,
        ax=ax,
        annot=annotations if annotations is not None else True,
        fmt="" if annotations is not None else fmt,
        cmap=cmap,
        vmin=None if limit is None else -limit,
        vmax=limit,
        square=True,
        cbar=True,
        cbar_kws={"shrink": 0.8, "label": colourbar_label or ""},
        xticklabels=labels,
        yticklabels=labels,
        annot_kws={"fontsize": 8},
        linewidths=0.3,
        linecolor="#eeeeee",
    )
    ax.set_xlabel("predicted", fontsize=11)
    ax.set_ylabel("true", fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.tick_params(axis="both", labelsize=10)
    ax.tick_params(axis="y", rotation=0)
    fig.subplots_adjust(left=0.1, right=0.96, bottom=0.11, top=0.93)
    return to_png(fig)


def digit_grid_png(
    images: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    title: str,
    confidences: np.ndarray | None = None,
    cols: int = 10,
    *,
    champion_pred: np.ndarray | None = None,
) -> bytes:
    """Tile digits in a grid, each titled with its predicted and true label.

    Args:
        images: ``(n, 28, 28)`` uint8 images (any ``(n, h, w)`` works).
        true: ``(n,)`` true labels.
        pred: ``(n,)`` predicted labels; tiles where they differ from ``true`` are drawn in red.
        title: Figure title.
        confidences: Optional ``(n,)`` probability of the predicted class, shown under the labels.
        cols: Tiles per row.
        champion_pred: Optional ``(n,)`` predictions of the champion, written under the challenger's.

    Returns:
        PNG bytes; a small "none" image when ``images`` is empty.
    """
    n = len(images)
    if n == 0:
        return message_png(title, "none")
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    height, width = images.shape[1], images.shape[2]
    vmax = ink_max(images)
    # One mosaic image in a single axes instead of one axes per tile: an axes costs ~15 ms to build
    # and draw, which made a 40-digit grid take most of a second.
    label_h = 6 + 4 * (confidences is not None) + 4 * (champion_pred is not None)
    cell_w, cell_h = width + TILE_GAP, height + label_h + TILE_GAP
    mosaic = np.zeros((rows * cell_h, cols * cell_w), dtype=np.float64)
    origins = []
    for i in range(n):
        row, col = divmod(i, cols)
        y0, x0 = row * cell_h + label_h, col * cell_w + TILE_GAP // 2
        mosaic[y0 : y0 + height, x0 : x0 + width] = images[i]
        origins.append((x0, y0))

    inches_per_unit = TILE_INCHES / cell_w
    grid_h = rows * cell_h * inches_per_unit
    title_h = 0.4
    fig = Figure(figsize=(cols * TILE_INCHES, grid_h + title_h))
    fig.text(0.5, 1 - title_h / 2 / (grid_h + title_h), title, ha="center", va="center", fontsize=11)
    ax = fig.add_axes((0.0, 0.0, 1.0, grid_h / (grid_h + title_h)))
    # Dark ink on white reads better on a light page than MNIST's native white-on-black.
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for i, (x0, y0) in enumerate(origins):
        wrong = int(pred[i]) != int(true[i])
        colour = BAD_COLOUR if wrong else OK_COLOUR
        frame = Rectangle(
            (x0 - 0.5, y0 - 0.5), width, height, fill=False, edgecolor=colour, linewidth=1.5 if wrong else 0.6
        )
        ax.add_patch(frame)
        label = f"pred {int(pred[i])} / true {int(true[i])}"
        if champion_pred is not None:
            label += f"\nchampion {int(champion_pred[i])}"
        if confidences is not None:
            label += f"\n{float(confidences[i]):.1%}"
        ax.text(
            x0 + width / 2 - 0.5,
            y0 - 1.5,
            label,
            ha="center",
            va="bottom",
            fontsize=7,
            color=colour,
            linespacing=1.1,
        )
    return to_png(fig)


def ink_max(images: np.ndarray) -> float:
    # Pixels are uint8 0-255; images already scaled to 0-1 floats for the model are drawn just as well.
    return 1.0 if images.dtype.kind == "f" and images.size and float(images.max()) <= 1.0 else 255.0
