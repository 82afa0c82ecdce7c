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


def _draw_curves(
    ax: Axes,
    curves: Mapping[str, BinnedCurves],
    kind: _CurveKind,
    operating_points: Mapping[str, float] | None,
) -> None:
    """A curve per model labelled ``"<model> (<score_name> = 0.987)"``, and each operating point."""
    colors = model_colors(curves)
    for model, model_curves in curves.items():
        x, y = kind.points(model_curves)
        label = f"{model} ({kind.score_name} = {kind.score(model_curves):.3f})"
        ax.plot(x, y, color=colors[model], drawstyle=kind.drawstyle, label=label)
        if operating_points and model in operating_points:
            px, py = kind.point_at(model_curves.counts_at(operating_points[model]))
            ax.plot([px], [py], "o", color=colors[model], label="_operating_point")
    ax.grid(alpha=0.3)
    ax.set_xlabel(kind.xlabel)
    ax.set_ylabel(kind.ylabel)


def _curves_figure(
    curves: Mapping[str, BinnedCurves],
    kind: _CurveKind,
    operating_points: Mapping[str, float] | None,
    chance: Callable[[Axes], None],
    n_axes: int = 1,
) -> Figure:
    """``n_axes`` axes side by side; the first: the curves on linear axes, chance, legend."""
    if not curves:
        raise ValueError("no curves to plot")
    fig = Figure(figsize=(5.5 * n_axes, 5.0), layout="constrained")
    ax = fig.subplots(1, n_axes, squeeze=False)[0, 0]
    _draw_curves(ax, curves, kind, operating_points)
    chance(ax)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_aspect("equal")
    ax.set_title(kind.title)
    ax.legend(loc=kind.legend_loc)
    return fig


def smallest_decade(values: np.ndarray, floor: float = 1e-7) -> float:
    """The power of ten at or below the smallest positive finite value (``floor`` at least;
    0.01 when there is none): where a log axis of rates starts."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return 0.01
    return float(max(floor, 10.0 ** np.floor(np.log10(positive.min()))))


def plot_roc_curves(
    curves: Mapping[str, BinnedCurves], operating_points: Mapping[str, float] | None = None
) -> Figure:
    """ROC curves of several models, with each ROC-AUC in the legend, twice: on linear axes
    (the paper's Fig. 5, 11) and with the false positive rate on a log scale.

    Good segmentation models have false positive rates of 1e-4 to 1e-2 at useful thresholds,
    so on linear axes all their curves hug the top-left corner and cannot be told apart;
    the log axis spreads exactly that corner out.

    Args:
        curves: model name -> that model's curves on the same split.
        operating_points: model name -> threshold to mark with a dot (optional).

    Returns:
        Figure with two axes, false positive rate on x (linear, then log from the decade of
        the smallest non-zero rate), true positive rate on y (the log panel from the lowest
        rate it shows, in steps of 0.05, to 1), chance dotted; the first holds the legend:
        ``"<model> (AUC = 0.987)"`` and ``"chance"``.
    """

    def diagonal(ax: Axes) -> None:
        ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")

    fig = _curves_figure(curves, _ROC, operating_points, diagonal, n_axes=2)
    log_ax = fig.axes[1]
    _draw_curves(log_ax, curves, _ROC, operating_points)
    points = [_ROC.points(c) for c in curves.values()]
    start = smallest_decade(np.concatenate([fpr for fpr, _ in points]))
    chance_x = np.logspace(np.log10(start), 0.0, 50)
    log_ax.plot(chance_x, chance_x, ":", color="grey", label="chance")
    log_ax.set_xscale("log", nonpositive="mask")
    log_ax.set_xlim(start, 1.0)
    # true positive rates from the lowest one on the plot (in steps of 0.05) to 1
    shown = np.concatenate([tpr[fpr >= start] for fpr, tpr in points])
    shown = shown[np.isfinite(shown)]
    low = np.floor(20.0 * (shown.min() - 0.01)) / 20.0 if shown.size else 0.0
    log_ax.set_ylim(max(0.0, low), 1.0 + 0.02 * (1.0 - max(0.0, low)))
    log_ax.set_title("ROC curve, false positive rate on a log scale")
    return fig


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
