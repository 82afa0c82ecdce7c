"""The reliability diagram shows each model's bins and ECE, and the pixels per bin."""

from __future__ import annotations

import numpy as np
import pytest

from slidemap.evaluation.calibration import CalibrationBins
from slidemap.plots.calibration import plot_reliability


def test_reliability_diagram_draws_each_models_bins_and_counts() -> None:
    rng = np.random.default_rng(1)
    prob = rng.random(5000)
    honest, shy = CalibrationBins(), CalibrationBins()
    honest.update(prob, (rng.random(prob.size) < prob).astype(np.uint8))
    shy.update(prob ** 3, (rng.random(prob.size) < prob).astype(np.uint8))
    figure = plot_reliability({"A": honest, "B": shy})
    diagram, counts = figure.axes
    assert [t.get_text() for t in diagram.get_legend().get_texts()] == [
        "perfect calibration", f"A (ECE = {honest.ece():.3f})", f"B (ECE = {shy.ece():.3f})"]
    for label, bins in (("A", honest), ("B", shy)):
        (line,) = [line for line in diagram.lines if line.get_label().startswith(label)]
        mean, fraction, _ = bins.reliability()
        np.testing.assert_allclose(line.get_xdata(), mean)
        np.testing.assert_allclose(line.get_ydata(), fraction)
    assert shy.ece() > 3 * honest.ece()  # the cubed probabilities are under-confident
    steps = counts.lines
    np.testing.assert_array_equal(steps[0].get_ydata()[:-1], honest.count)
    assert counts.get_yscale() == "log" and "15 equal-width bins" in diagram.get_title()
    assert diagram.get_xlim() == (0.0, 1.0)


def test_reliability_diagram_needs_a_model() -> None:
    with pytest.raises(ValueError, match="no calibration"):
        plot_reliability({})
