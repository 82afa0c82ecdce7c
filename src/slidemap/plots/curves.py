"""Training curves per epoch (the paper's Fig. 4, 7 and 8)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from slidemap.plots.style import PANEL_LETTERS, model_colors, panel_grid

METRIC_TITLES: dict[str, str] = {
    "loss": "Loss",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1 score",
    "iou": "IoU",
    "dice": "Dice",
    "accuracy": "Accuracy",
    "mcc": "MCC",
}

EpochRecord = Mapping[str, float | int | None]
"""One epoch: ``epoch`` plus ``train_<metric>`` and ``val_<metric>`` values."""


def _series(records: Sequence[EpochRecord], key: str) -> np.ndarray | None:
    """Values of ``key`` per record as float64 (NaN where absent); None if never present."""
    if not any(key in record for record in records):
        return None
    values = [record.get(key) for record in records]
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def plot_training_curves(
    history: Mapping[str, Sequence[EpochRecord]],
    metrics: Sequence[str] = ("loss", "precision", "recall", "f1"),
    max_cols: int = 2,
) -> Figure:
    """Grid of per-epoch curves, one subplot per metric, one colour per model.

    Args:
        history: model name -> list of per-epoch records, each with ``epoch`` and
            ``train_<metric>`` / ``val_<metric>`` for the metrics wanted (``metrics.csv``
            rows). A missing value leaves a gap; a series never recorded is not drawn.
        metrics: metric names, one subplot each (the paper's Fig. 4 is ``("loss",
            "precision")``, Fig. 8 ``("recall", "f1")``).
        max_cols: subplots per row.

    Returns:
        Figure with ``len(metrics)`` axes; training solid, validation dashed, lines
        labelled ``"<model> train"`` / ``"<model> val"``.
    """
    if not history:
        raise ValueError("no training history to plot")
    fig, axes = panel_grid(len(metrics), max_cols, panel_size=(5.0, 3.6))
    colors = model_colors(history)
    for ax, metric, letter in zip(axes, metrics, PANEL_LETTERS, strict=False):
        for model, records in history.items():
            epochs = _series(records, "epoch")
            x = np.arange(len(records)) if epochs is None else epochs
            for split, style in (("train", "-"), ("val", "--")):
                y = _series(records, f"{split}_{metric}")
                if y is not None:
                    ax.plot(x, y, style, color=colors[model], label=f"{model} {split}")
        ax.set_title(f"({letter}) {METRIC_TITLES.get(metric, metric)}")
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(METRIC_TITLES.get(metric, metric))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    return fig
