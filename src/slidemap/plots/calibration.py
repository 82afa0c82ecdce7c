"""Reliability diagram: are the landslide probabilities of one or more models honest?"""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from slidemap.evaluation.calibration import CalibrationBins
from slidemap.plots.style import model_colors


def plot_reliability(calibrations: Mapping[str, CalibrationBins]) -> Figure:
    """The reliability diagram of several models (their bins, e.g. 15 each), and how many
    pixels each bin holds.

    Args:
        calibrations: model name -> that model's calibration bins on a split.

    Returns:
        Figure with two axes sharing x (predicted landslide probability, 0-1): above, each
        model's landslide fraction against its mean probability per non-empty bin (dots
        joined; the diagonal dotted is perfect calibration; legend ``"<model> (ECE =
        0.012)"``); below, the pixels per bin on a log scale (most pixels sit in the first
        and last bins).
    """
    if not calibrations:
        raise ValueError("no calibration to plot")
    fig = Figure(figsize=(5.5, 6.5), layout="constrained")
    diagram, counts = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    diagram.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    colors = model_colors(calibrations)
    for model, bins in calibrations.items():
        mean, fraction, pixels = bins.reliability()
        diagram.plot(mean, fraction, "o-", color=colors[model], markersize=4,
                     label=f"{model} (ECE = {bins.ece():.3f})")
        counts.step(bins.edges, [*bins.count, bins.count[-1]], where="post", color=colors[model])
    n_bins = {bins.n_bins for bins in calibrations.values()}
    diagram.set_xlim(0.0, 1.0)
    diagram.set_ylim(0.0, 1.0)
    diagram.set_aspect("equal")
    diagram.set_ylabel("Fraction of landslide pixels")
    diagram.set_title(f"Reliability diagram ({', '.join(map(str, sorted(n_bins)))} equal-width bins)")
    diagram.grid(alpha=0.3)
    diagram.legend(loc="upper left")
    counts.set_yscale("log")
    counts.set_xlabel("Predicted landslide probability")
    counts.set_ylabel("Pixels per bin")
    counts.grid(alpha=0.3)
    return fig
