"""ROC (paper Fig. 5, 11) and PR figures."""

from __future__ import annotations

import numpy as np
import torch

from slidemap.evaluation.curves import BinnedCurves
from slidemap.plots.roc import plot_pr_curves, plot_roc_curves


def _curves() -> dict[str, BinnedCurves]:
    rng = np.random.default_rng(0)
    target = torch.from_numpy((rng.random(5_000) < 0.1).astype(np.int64))
    result = {}
    for name, separation in (("DP-FCN", 0.5), ("UNet-CBAM", 2.5)):
        prob = torch.sigmoid(torch.from_numpy(rng.normal(size=5_000) + separation * target.numpy()))
        curves = BinnedCurves(100)
        curves.update(prob, target)
        result[name] = curves
    return result


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_roc_figure_names_each_model_with_its_auc() -> None:
    curves = _curves()
    fig = plot_roc_curves(curves, operating_points={"UNet-CBAM": 0.5})
    assert len(fig.axes) == 2  # linear, then log false positive rate
    legend = _legend(fig)
    for name, c in curves.items():
        assert f"{name} (AUC = {c.roc_auc():.3f})" in legend
    assert legend[-1] == "chance" and len(legend) == 3
    ax = fig.axes[0]
    assert ax.get_xlabel() == "False positive rate" and ax.get_ylabel() == "True positive rate"
    marker = next(line for line in ax.lines if line.get_label() == "_operating_point")
    counts = curves["UNet-CBAM"].counts_at(0.5)
    assert marker.get_ydata()[0] == counts.tp / counts.n_positive
    assert marker.get_xdata()[0] == counts.fp / counts.n_negative
    # each curve is drawn through its own ROC points, in its legend's order
    for name, c in curves.items():
        line = next(line for line in ax.lines if line.get_label().startswith(f"{name} (AUC"))
        fpr, tpr, _ = c.roc()
        np.testing.assert_array_equal(line.get_xdata(), fpr)
        np.testing.assert_array_equal(line.get_ydata(), tpr)
    assert curves["UNet-CBAM"].roc_auc() > curves["DP-FCN"].roc_auc() + 0.2  # distinct curves


def test_pr_figure_names_each_model_with_its_average_precision() -> None:
    curves = _curves()
    fig = plot_pr_curves(curves)
    legend = _legend(fig)
    for name, c in curves.items():
        assert f"{name} (AP = {c.pr_auc():.3f})" in legend
    assert "chance" in legend
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Recall" and ax.get_ylabel() == "Precision"
    for name, c in curves.items():
        line = next(line for line in ax.lines if line.get_label().startswith(f"{name} (AP"))
        recall, precision, _ = c.pr()
        np.testing.assert_array_equal(line.get_xdata(), recall)
        np.testing.assert_array_equal(line.get_ydata(), precision)
        assert line.get_drawstyle() == "steps-pre"  # the step function whose area is the AP
    (chance,) = [line for line in ax.lines if line.get_label() == "chance"]
    prevalence = curves["UNet-CBAM"].n_positive / curves["UNet-CBAM"].n_pixels
    assert 0.05 < prevalence < 0.15 and list(chance.get_ydata()) == [prevalence, prevalence]


def test_pr_figure_has_no_chance_line_when_models_saw_other_pixels() -> None:
    curves = _curves()
    other = BinnedCurves(100)
    other.update(torch.tensor([0.2, 0.9, 0.7]), torch.tensor([0, 1, 1]))
    fig = plot_pr_curves({**curves, "other": other})
    assert "chance" not in _legend(fig)


def test_roc_figure_spreads_the_corner_on_a_log_false_positive_axis() -> None:
    """Curves that all hug the top-left corner (FPR ~1e-4) stay readable on the second axes:
    log-scaled false positive rate, starting at the decade of the smallest non-zero rate."""
    rng = np.random.default_rng(1)
    n = 200_000
    target = torch.from_numpy((rng.random(n) < 0.05).astype(np.int64))
    curves = {}
    for name, separation in (("UNet", 7.0), ("UNet-CBAM", 8.0)):
        logits = rng.normal(size=n) + separation * target.numpy() - 4.0
        model_curves = BinnedCurves(1000)
        model_curves.update(torch.sigmoid(torch.from_numpy(logits)), target)
        curves[name] = model_curves
    fig = plot_roc_curves(curves)
    linear, log = fig.axes
    assert linear.get_xscale() == "linear" and log.get_xscale() == "log"
    smallest = min(c.roc()[0][c.roc()[0] > 0].min() for c in curves.values())
    low, high = log.get_xlim()
    assert low <= smallest < 10 * low and high == 1.0
    assert low < 1e-3  # the corner where the models differ is on the plot
    # ... and the true positive rate axis zooms on the rates shown there
    shown = np.concatenate([c.roc()[1][c.roc()[0] >= low] for c in curves.values()])
    bottom, top = log.get_ylim()
    assert 0.5 < bottom <= shown.min() and top >= 1.0
    # both models' curves are drawn on the log axes, with the same colours as the legend
    drawn = [line for line in log.lines if not line.get_label().startswith("_")]
    assert [line.get_color() for line in drawn[:2]] == [line.get_color() for line in linear.lines[:2]]
