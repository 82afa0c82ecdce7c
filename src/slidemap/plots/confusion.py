"""Confusion matrices of several models side by side (the paper's Fig. 10).

True label on y, predicted label on x, so the cells are ``[[TN, FP], [FN, TP]]``, and each
cell is named in the figure. The paper's Fig. 10 names FP and FN the other way round from
what its Table 1 implies (see docs/evaluation.md); naming every cell leaves no doubt here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from slidemap.evaluation.metrics import ConfusionCounts
from slidemap.plots.style import PANEL_LETTERS, panel_grid

CLASS_NAMES: tuple[str, str] = ("Background (0)", "Landslide (1)")
CELL_NAMES: tuple[tuple[str, str], tuple[str, str]] = (("TN", "FP"), ("FN", "TP"))


def row_normalised(counts: ConfusionCounts) -> np.ndarray:
    """(2, 2) float64: each row of ``[[TN, FP], [FN, TP]]`` divided by its sum (0 for an empty row)."""
    matrix = np.array(counts.as_matrix(), dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion_matrices(counts: Mapping[str, ConfusionCounts], max_cols: int = 4) -> Figure:
    """One confusion matrix per model, coloured by row-normalised fraction.

    Args:
        counts: model name -> confusion counts on the same split.
        max_cols: matrices per row.

    Returns:
        Figure with one axes per model plus one colour bar. Each cell shows its name
        (TN/FP/FN/TP), its count with thousands separators and its share of the true class
        in percent (recall for TP, specificity for TN).
    """
    if not counts:
        raise ValueError("no confusion matrices to plot")
    fig, axes = panel_grid(len(counts), max_cols, panel_size=(3.6, 3.4), extra_width=0.8)
    image = None
    for ax, letter, (model, model_counts) in zip(axes, PANEL_LETTERS, counts.items(), strict=False):
        matrix = model_counts.as_matrix()
        shares = row_normalised(model_counts)
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(2):
            for j in range(2):
                ax.text(
                    j,
                    i,
                    f"{CELL_NAMES[i][j]}\n{matrix[i][j]:,}\n{100 * shares[i, j]:.1f}%",
                    ha="center",
                    va="center",
                    color="white" if shares[i, j] > 0.5 else "black",
                )
        ax.set_xticks([0, 1], CLASS_NAMES)
        ax.set_yticks([0, 1], CLASS_NAMES, rotation=90, va="center")
        ax.set_xlabel("Predicted label")
        ax.set_ylabel("True label")
        ax.set_title(f"({letter}) {model}")
    fig.colorbar(image, ax=axes, label="Share of true class", shrink=0.8)
    return fig
