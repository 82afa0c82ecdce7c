"""Expected calibration error and the reliability diagram's bins, streamed: against a float64
transcription of the definition (Guo et al. 2017, 15 equal-width right-closed bins),
scikit-learn's ``calibration_curve`` and a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from slidemap.evaluation.calibration import CALIBRATION_BINS, CalibrationBins


def ece_transcription(prob: np.ndarray, truth: np.ndarray, n_bins: int = 15) -> float:
    """ECE = Σ_m |B_m|/N · |acc(B_m) − conf(B_m)|, B_m = {i: m/n < p_i <= (m+1)/n} (p = 0 in
    B_0), acc = fraction of landslide pixels, conf = mean probability; float64, pixel by pixel."""
    prob = prob.astype(np.float64).ravel()
    truth = truth.ravel()
    n = prob.size
    total = 0.0
    for m in range(n_bins):
        low, high = m / n_bins, (m + 1) / n_bins
        members = (prob > low) & (prob <= high) if m > 0 else (prob <= high)
        if members.any():
            total += members.sum() / n * abs(truth[members].mean() - prob[members].mean())
    return total


@pytest.fixture
def scored_pixels() -> tuple[np.ndarray, np.ndarray]:
    """Miscalibrated probabilities (the truth follows p**1.5) on 200 x 300 pixels, float32 as
    the models give them, with saturated 0 and 1 among them."""
    rng = np.random.default_rng(4)
    prob = rng.beta(0.4, 1.5, size=(200, 300)).astype(np.float32)
    prob[0, :20], prob[1, :20] = 0.0, 1.0
    truth = (rng.random(prob.shape) < prob.astype(np.float64) ** 1.5).astype(np.uint8)
    return prob, truth


def test_ece_equals_the_float64_transcription_when_streamed_in_chunks(scored_pixels) -> None:
    prob, truth = scored_pixels
    bins = CalibrationBins()
    for rows in np.array_split(np.arange(prob.shape[0]), 7):
        bins.update(prob[rows], truth[rows])
    expected = ece_transcription(prob, truth)
    assert bins.n_bins == CALIBRATION_BINS == 15
    assert bins.n_pixels == prob.size
    assert expected > 0.02  # miscalibrated on purpose: a real number to match
    assert bins.ece() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_reliability_points_equal_scikit_learns_calibration_curve(scored_pixels) -> None:
    prob, truth = scored_pixels
    bins = CalibrationBins()
    bins.update(prob, truth)
    mean, fraction, pixels = bins.reliability()
    prob_true, prob_pred = calibration_curve(truth.ravel(), prob.ravel().astype(np.float64),
                                             n_bins=15, strategy="uniform")
    np.testing.assert_allclose(fraction, prob_true, rtol=1e-12)
    np.testing.assert_allclose(mean, prob_pred, rtol=1e-9)
    assert pixels.sum() == prob.size


def test_ece_of_a_case_computed_by_hand() -> None:
    # bins of width 1/15: 0.1 in (1/15, 2/15], 0.9 in (13/15, 14/15], 0.5 in (7/15, 8/15],
    # 0 in the first bin, 1 in the last, 2/15 exactly on an edge: the lower bin (right-closed)
    prob = np.array([0.1, 0.1, 0.9, 0.9, 0.5, 0.0, 1.0, 2 / 15])
    truth = np.array([0, 1, 1, 1, 0, 0, 1, 0])
    bins = CalibrationBins()
    bins.update(prob, truth)
    assert bins.count.tolist() == [1, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 1]
    assert bins.positive.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1]
    # |positives − Σp| per bin: 0, |1 − (0.2 + 2/15)|, 0.5, |2 − 1.8|, 0; over 8 pixels
    expected = (0.0 + abs(1 - (0.2 + 2 / 15)) + 0.5 + 0.2 + 0.0) / 8
    assert bins.ece() == pytest.approx(expected, rel=1e-12)
    assert bins.ece() == pytest.approx(ece_transcription(prob, truth), rel=1e-12)
    record = bins.to_dict()
    assert record["bins"] == 15 and record["ece"] == bins.ece()
    assert record["mean_probability"][13] == pytest.approx(0.9)
    assert record["landslide_fraction"][1] == pytest.approx(1 / 3) and record["landslide_fraction"][2] is None


def test_calibrated_probabilities_have_a_small_ece_and_overconfident_ones_a_large_one() -> None:
    rng = np.random.default_rng(0)
    prob = rng.random(400_000)
    honest, sure = CalibrationBins(), CalibrationBins()
    honest.update(prob, (rng.random(prob.size) < prob).astype(np.uint8))
    # the truth is a coin flip whatever the model says: ECE = E|p - 0.5| = 0.25
    sure.update(prob, (rng.random(prob.size) < 0.5).astype(np.uint8))
    assert honest.ece() < 0.005
    assert sure.ece() == pytest.approx(0.25, abs=0.005)


def test_ignored_and_invalid_pixels_are_left_out_and_merge_is_exact(scored_pixels) -> None:
    prob, truth = scored_pixels
    marked = truth.copy()
    marked[:, :50] = 255
    valid = np.ones(prob.shape, dtype=bool)
    valid[:10] = False
    bins = CalibrationBins()
    bins.update(prob, marked, valid)
    keep = (marked != 255) & valid
    assert bins.n_pixels == int(keep.sum())
    assert bins.ece() == pytest.approx(ece_transcription(prob[keep], truth[keep]), rel=1e-12)
    halves = CalibrationBins()
    halves.update(prob[:100], marked[:100], valid[:100])
    other = CalibrationBins()
    other.update(prob[100:], marked[100:], valid[100:])
    halves.merge(other)
    np.testing.assert_array_equal(halves.count, bins.count)
    np.testing.assert_array_equal(halves.positive, bins.positive)
    assert halves.ece() == pytest.approx(bins.ece(), rel=1e-12)


def test_probabilities_outside_0_1_are_refused_and_no_pixel_gives_nan() -> None:
    bins = CalibrationBins()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bins.update(np.array([0.5, 1.2]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bins.update(np.array([np.nan]), np.array([1]))
    assert math.isnan(CalibrationBins().ece())
    assert CalibrationBins().to_dict()["ece"] is None
