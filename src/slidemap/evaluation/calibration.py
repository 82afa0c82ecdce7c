"""Calibration of landslide probabilities over millions of pixels, in constant memory.

Are the probabilities honest: of the pixels given 0.8, are 80 % landslides?
:class:`CalibrationBins` answers it as :class:`~slidemap.evaluation.curves.BinnedCurves`
answers ROC and PR: it never stores probabilities, only, per bin, the number of pixels, the
sum of their probabilities (float64) and the number of landslide pixels among them. Updating
is one ``bucketize`` and three ``bincount`` per batch; merging two (chunks, processes) adds
the sums.

Bins. ``n = n_bins`` (default :data:`CALIBRATION_BINS` = 15) equal-width bins of the
landslide probability, right-closed as in Guo et al. (2017) and scikit-learn's
``calibration_curve(strategy="uniform")``: bin ``m`` (0-based) holds ``m/n < p <= (m+1)/n``,
and ``p = 0`` falls in bin 0.

Expected calibration error (Naeini et al. 2015; Guo et al. 2017, with 15 bins):

    ECE = Σ_m (|B_m| / N) · |frac(B_m) − conf(B_m)| = Σ_m |positives_m − Σ_(i∈B_m) p_i| / N

where ``frac(B_m)`` is the fraction of landslide pixels in bin ``m`` and ``conf(B_m)`` the
mean probability there: the pixel-weighted gap between the reliability diagram and its
diagonal, 0 for perfectly calibrated probabilities, at most 1. It is computed on the
landslide probability (the positive class), the diagram drawn in ``calibration.png``. For two
classes, Guo et al.'s "top-label" form bins the confidence ``max(p, 1 − p)`` instead, which
folds (about) bins ``m`` and ``n − 1 − m`` together before taking the gap; the form here
keeps over- and under-confidence on the two sides of 0.5 apart, as the diagram shows them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from slidemap.evaluation.curves import labelled_probabilities

#: Bins of the reliability diagram and the expected calibration error (Guo et al. 2017).
CALIBRATION_BINS = 15


class CalibrationBins:
    """Streaming per-bin counts and sums of landslide probabilities.

    Args:
        n_bins: number of equal-width bins on [0, 1] (right-closed; see the module docstring).

    Attributes:
        count: ``(n_bins,) int64`` pixels per bin.
        probability_sum: ``(n_bins,) float64`` sum of the pixels' probabilities per bin.
        positive: ``(n_bins,) int64`` landslide pixels per bin.
    """

    def __init__(self, n_bins: int = CALIBRATION_BINS) -> None:
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
        self.n_bins = n_bins
        self.count = np.zeros(n_bins, dtype=np.int64)
        self.probability_sum = np.zeros(n_bins, dtype=np.float64)
        self.positive = np.zeros(n_bins, dtype=np.int64)

    def __repr__(self) -> str:
        return f"CalibrationBins(n_bins={self.n_bins}, pixels={self.n_pixels})"

    @property
    def n_pixels(self) -> int:
        """Valid pixels seen."""
        return int(self.count.sum())

    @property
    def edges(self) -> np.ndarray:
        """``(n_bins + 1,) float64`` bin edges ``m / n_bins``."""
        return np.arange(self.n_bins + 1, dtype=np.float64) / self.n_bins

    def update(
        self,
        prob: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        valid: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """Add a batch of pixels (arguments and errors of
        :func:`~slidemap.evaluation.curves.labelled_probabilities`: 255 and invalid pixels
        are left out)."""
        p, positive = labelled_probabilities(prob, target, valid)
        p, positive = p.cpu(), positive.cpu()
        inner_edges = torch.arange(1, self.n_bins, dtype=torch.float64) / self.n_bins
        index = torch.bucketize(p, inner_edges, right=False)  # edges[m-1] < p <= edges[m]
        self.count += torch.bincount(index, minlength=self.n_bins).numpy()
        self.probability_sum += torch.bincount(index, weights=p, minlength=self.n_bins).numpy()
        self.positive += torch.bincount(index[positive], minlength=self.n_bins).numpy()

    def merge(self, other: CalibrationBins) -> CalibrationBins:
        """Add ``other``'s pixels to this one; returns self."""
        if not isinstance(other, CalibrationBins) or other.n_bins != self.n_bins:
            raise ValueError(f"can only merge CalibrationBins with n_bins={self.n_bins}, got {other!r}")
        self.count += other.count
        self.probability_sum += other.probability_sum
        self.positive += other.positive
        return self

    def reliability(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reliability diagram over the non-empty bins.

        Returns:
            ``(mean probability, landslide fraction, pixels)`` per non-empty bin, float64,
            float64 and int64, in bin order (scikit-learn's ``calibration_curve`` returns the
            first two as ``prob_pred`` and ``prob_true``).
        """
        filled = self.count > 0
        count = self.count[filled]
        return self.probability_sum[filled] / count, self.positive[filled] / count, count

    def ece(self) -> float:
        """Expected calibration error (module docstring); NaN with no pixel."""
        if self.n_pixels == 0:
            return math.nan
        return float(np.abs(self.positive - self.probability_sum).sum() / self.n_pixels)

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``metrics.json``: ``bins``, ``ece`` and, per bin (empty ones
        included), ``pixels``, ``mean_probability`` and ``landslide_fraction`` (``None`` for
        an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.probability_sum / self.count
            fraction = self.positive / self.count
        empty = self.count == 0
        ece = self.ece()
        return {
            "bins": self.n_bins,
            "ece": None if math.isnan(ece) else ece,
            "pixels": self.count.tolist(),
            "mean_probability": [None if e else float(v) for v, e in zip(mean, empty, strict=True)],
            "landslide_fraction": [None if e else float(v) for v, e in zip(fraction, empty, strict=True)],
        }
