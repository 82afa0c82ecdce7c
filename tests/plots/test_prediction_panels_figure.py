"""Prediction panels (paper Fig. 6, 9), errors coloured."""

from __future__ import annotations

import numpy as np
import pytest

from slidemap.plots.panels import (
    FN,
    FP,
    IGNORED,
    TN,
    TP,
    outcome_map,
    percentile_stretch,
    plot_prediction_panels,
)


def test_outcome_map_codes_every_case() -> None:
    truth = np.array([[0, 1, 1], [0, 255, 0]])
    predicted = np.array([[0, 1, 0], [1, 1, 0]])
    assert outcome_map(predicted, truth).tolist() == [[TN, TP, FN], [FP, IGNORED, TN]]
    with pytest.raises(ValueError, match="threshold"):
        outcome_map(np.full((2, 3), 0.7), truth)


def test_percentile_stretch_maps_to_unit_range() -> None:
    image = np.stack(
        [np.arange(100.0).reshape(10, 10), np.full((10, 10), 3.0), np.full((10, 10), np.nan)]
    )
    rgb = percentile_stretch(image)
    assert rgb.shape == (10, 10, 3) and rgb.dtype == np.float32
    assert rgb[..., 0].min() == 0.0 and rgb[..., 0].max() == 1.0
    assert not rgb[..., 1:].any()


def test_panel_grid_has_image_truth_and_one_column_per_model_with_legend() -> None:
    rng = np.random.default_rng(0)
    images = [rng.random((14, 16, 16)).astype(np.float32) for _ in range(3)]
    truths = [(rng.random((16, 16)) < 0.2).astype(np.uint8) for _ in range(3)]
    predictions = {
        "UNet": [(rng.random((16, 16)) < 0.2).astype(np.uint8) for _ in range(3)],
        "UNet-CBAM": truths,
    }
    fig = plot_prediction_panels(
        images, truths, predictions, ids=["p1", "p2", "p3"], rgb_bands=(3, 2, 1)
    )
    assert len(fig.axes) == 3 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["Image", "Ground truth", "UNet", "UNet-CBAM"]
    assert fig.axes[4].get_ylabel() == "p2"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["TN", "TP", "FP", "FN", "ignored"]
    # a perfect prediction is drawn exactly like the truth
    np.testing.assert_array_equal(
        fig.axes[1].images[0].get_array(), fig.axes[3].images[0].get_array()
    )
    for row in range(3):  # every row shows its own patch, in the bands asked for
        rgb = fig.axes[4 * row].images[0].get_array()
        np.testing.assert_array_equal(rgb, percentile_stretch(images[row][[3, 2, 1]]))
        np.testing.assert_array_equal(fig.axes[4 * row + 2].images[0].get_array(),
                                      outcome_map(predictions["UNet"][row], truths[row]))
    # the outcome colours are the legend's
    truth_image = fig.axes[1].images[0]
    legend = {t.get_text(): patch.get_facecolor()
              for t, patch in zip(fig.legends[0].get_texts(), fig.legends[0].get_patches(), strict=True)}
    assert tuple(truth_image.to_rgba(TP)) == legend["TP"] and tuple(truth_image.to_rgba(TN)) == legend["TN"]
    assert tuple(truth_image.to_rgba(FP)) == legend["FP"] and tuple(truth_image.to_rgba(FN)) == legend["FN"]


def test_panels_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="one per image"):
        plot_prediction_panels([np.zeros((3, 4, 4))], [np.zeros((4, 4))], {"m": []})
