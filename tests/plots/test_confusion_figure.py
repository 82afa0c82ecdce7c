"""Confusion-matrix figure (paper Fig. 10), with TN/FP/FN/TP where they belong."""

from __future__ import annotations

import numpy as np
import pytest

from slidemap.evaluation.metrics import ConfusionCounts
from slidemap.plots.confusion import plot_confusion_matrices, row_normalised


def test_cells_show_names_counts_and_row_percent_in_the_right_places() -> None:
    counts = {
        "UNet-CBAM": ConfusionCounts(tp=93206, fp=44347, fn=24159, tn=4_800_000),
        "UNet": ConfusionCounts(tp=87683, fp=50000, fn=23584, tn=4_800_000),
        "SegNet": ConfusionCounts(tp=82714, fp=54839, fn=44907, tn=4_700_000),
    }
    fig = plot_confusion_matrices(counts)
    assert len(fig.axes) == 3 + 1  # one per model plus the colour bar
    ax = fig.axes[0]
    assert ax.get_title() == "(a) UNet-CBAM"
    assert ax.get_xlabel() == "Predicted label" and ax.get_ylabel() == "True label"
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    # (row = true, column = predicted)
    assert cells[(0, 0)].startswith("TN\n4,800,000\n")
    assert cells[(0, 1)].startswith("FP\n44,347\n")
    assert cells[(1, 0)] == f"FN\n24,159\n{100 * 24159 / (24159 + 93206):.1f}%"
    assert cells[(1, 1)].startswith("TP\n93,206\n")
    # colours: each row's share of its true class, on a 0-1 colour bar
    for ax, model_counts in zip(fig.axes, counts.values(), strict=False):
        image = ax.images[0]
        np.testing.assert_allclose(image.get_array(), row_normalised(model_counts))
        assert image.get_clim() == (0.0, 1.0)
    assert fig.axes[-1].get_ylabel() == "Share of true class"
    assert fig.axes[-1].get_ylim() == (0.0, 1.0)
    assert np.asarray(fig.axes[2].images[0].get_array())[1, 1] == pytest.approx(82714 / (82714 + 44907))


def test_row_normalised_handles_an_empty_row() -> None:
    shares = row_normalised(ConfusionCounts(tp=0, fp=1, fn=0, tn=3))
    assert shares.tolist() == [[0.75, 0.25], [0.0, 0.0]]
