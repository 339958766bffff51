"""Confusion matrices as a PNG (counts beside row-normalised recall) and as a CSV.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg canvas), so no pyplot
global state is touched and nothing needs closing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

CMAP = "Blues"
DPI = 120


def plot_confusion(
    confusion: np.ndarray, classes: Sequence[str], *, title: str, path: Path
) -> Path:
    """Save counts and recall-per-true-class panels of ``confusion`` to the PNG ``path``.

    Rows of ``confusion`` are true labels and columns predicted labels, in ``classes`` order.
    The title gets the clip count, accuracy and UAR appended.
    """
    counts, classes = _check(confusion, classes)
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, counts / support, np.nan)
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else float("nan")
    uar = float(np.nanmean(np.diag(recall))) if np.any(support > 0) else float("nan")

    n = len(classes)
    side = max(3.5, 0.55 * n + 1.5)  # inches per panel
    fig = Figure(figsize=(2 * side + 1.6, side + 0.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)

    peak = max(int(counts.max()), 1)
    image = left.imshow(counts, cmap=CMAP, vmin=0, vmax=peak)
    _annotate(left, counts, counts / peak, lambda v: f"{int(v)}")
    fig.colorbar(image, ax=left, fraction=0.046, pad=0.03, label="clips")
    left.set_title("counts")

    image = right.imshow(np.nan_to_num(recall), cmap=CMAP, vmin=0, vmax=1)
    _annotate(right, recall, recall, lambda v: "n/a" if np.isnan(v) else f"{100 * v:.0f}%")
    fig.colorbar(
        image,
        ax=right,
        fraction=0.046,
        pad=0.03,
        format=PercentFormatter(1.0, decimals=0),
        label="share of the true class",
    )
    right.set_title("recall per true class (row-normalised)")

    for ax in (left, right):
        ax.set_xticks(range(n), classes, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), classes)
        ax.set_xlabel("predicted emotion")
        ax.set_ylabel("true emotion")
    fig.suptitle(
        f"{title}\nn = {total} clips · accuracy {accuracy:.1%} · UAR {uar:.1%}", fontsize=12
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def confusion_csv(confusion: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    r"""Write ``confusion`` as a CSV: header ``true\pred,<classes...>``, one row per true label.

    Read it back with ``pd.read_csv(path, index_col=0)``.
    """
    counts, classes = _check(confusion, classes)
    frame = pd.DataFrame(counts, index=pd.Index(classes, name="true\\pred"), columns=classes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path)
    return path


def _annotate(ax: Axes, values: np.ndarray, shade: np.ndarray, fmt) -> None:
    """Write each cell's value, white on dark cells and black on light ones."""
    fontsize = 10 if len(values) <= 6 else 8
    for (i, j), value in np.ndenumerate(values):
        dark = not np.isnan(shade[i, j]) and shade[i, j] > 0.55
        ax.text(
            j,
            i,
            fmt(value),
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if dark else "black",
        )


def _check(confusion: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    counts = np.asarray(confusion)
    classes = [str(c) for c in classes]
    if counts.ndim != 2 or counts.shape != (len(classes), len(classes)):
        raise ValueError(
            f"confusion has shape {counts.shape}; expected a square "
            f"({len(classes)}, {len(classes)}) matrix matching classes"
        )
    if np.any(counts < 0):
        raise ValueError("confusion counts must be non-negative")
    return counts, classes
