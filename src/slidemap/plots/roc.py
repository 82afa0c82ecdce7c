"""ROC curves (the paper's Fig. 5 and 11) and precision-recall curves of several models."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from slidemap.evaluation.curves import BinnedCurves
from slidemap.evaluation.metrics import ConfusionCounts
from slidemap.plots.style import model_colors


def _rate(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


@dataclass(frozen=True)
class _CurveKind:
    """What differs between the ROC and the PR figure."""

    points: Callable[[BinnedCurves], tuple[np.ndarray, np.ndarray]]
    score: Callable[[BinnedCurves], float]
    score_name: str
    point_at: Callable[[ConfusionCounts], tuple[float, float]]
    xlabel: str
    ylabel: str
    title: str
    drawstyle: str
    legend_loc: str


_ROC = _CurveKind(
    points=lambda c: c.roc()[:2],
    score=BinnedCurves.roc_auc,
    score_name="AUC",
    point_at=lambda n: (_rate(n.fp, n.n_negative), _rate(n.tp, n.n_positive)),
    xlabel="False positive rate",
    ylabel="True positive rate",
    title="ROC curve",
    drawstyle="default",
    legend_loc="lower right",
)
_PR = _CurveKind(
    points=lambda c: c.pr()[:2],
    score=BinnedCurves.pr_auc,
    score_name="AP",
    point_at=lambda n: (_rate(n.tp, n.n_positive), _rate(n.tp, n.tp + n.fp)),
    xlabel="Recall",
    ylabel="Precision",
    title="Precision-recall curve",
    drawstyle="steps-pre",  # average precision is the area under this step function
    legend_loc="lower left",
)


def _curves_figure(
    curves: Mapping[str, BinnedCurves],
    kind: _CurveKind,
    operating_points: Mapping[str, float] | None,
    chance: Callable[[Axes], None],
) -> Figure:
    """One axes, a curve per model labelled ``"<model> (<score_name> = 0.987)"``, then chance."""
    if not curves:
        raise ValueError("no curves to plot")
    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    colors = model_colors(curves)
    for model, model_curves in curves.items():
        x, y = kind.points(model_curves)
        label = f"{model} ({kind.score_name} = {kind.score(model_curves):.3f})"
        ax.plot(x, y, color=colors[model], drawstyle=kind.drawstyle, label=label)
        if operating_points and model in operating_points:
            px, py = kind.point_at(model_curves.counts_at(operating_points[model]))
            ax.plot([px], [py], "o", color=colors[model], label="_operating_point")
    chance(ax)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_xlabel(kind.xlabel)
    ax.set_ylabel(kind.ylabel)
    ax.set_title(kind.title)
    ax.legend(loc=kind.legend_loc)
    return fig


def plot_roc_curves(
    curves: Mapping[str, BinnedCurves], operating_points: Mapping[str, float] | None = None
) -> Figure:
    """ROC curves of several models on one axes, with each ROC-AUC in the legend.

    Args:
        curves: model name -> that model's curves on the same split.
        operating_points: model name -> threshold to mark with a dot (optional).

    Returns:
        Figure with one axes: false positive rate on x, true positive rate on y, the chance
        diagonal dotted; legend entries ``"<model> (AUC = 0.987)"`` and ``"chance"``.
    """

    def diagonal(ax: Axes) -> None:
        ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")

    return _curves_figure(curves, _ROC, operating_points, diagonal)


def plot_pr_curves(
    curves: Mapping[str, BinnedCurves], operating_points: Mapping[str, float] | None = None
) -> Figure:
    """Precision-recall curves of several models on one axes, with each PR-AUC in the legend.

    Args: as :func:`plot_roc_curves`.

    Returns:
        Figure with one axes: recall on x, precision on y (step-wise, as average precision
        is computed); legend entries ``"<model> (AP = 0.812)"``, plus ``"chance"`` (the
        landslide fraction) when all models were scored on the same pixels.
    """

    def prevalence(ax: Axes) -> None:
        class_sizes = {(c.n_positive, c.n_pixels) for c in curves.values()}
        if len(class_sizes) == 1:
            n_positive, n_pixels = class_sizes.pop()
            if n_pixels:
                ax.axhline(n_positive / n_pixels, linestyle=":", color="grey", label="chance")

    return _curves_figure(curves, _PR, operating_points, prevalence)
