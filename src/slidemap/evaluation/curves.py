"""ROC and precision-recall curves over millions of pixels, in constant memory.

:class:`BinnedCurves` never stores probabilities: it keeps two int64 histograms, one of the
probabilities of landslide pixels and one of background pixels, over fixed bins of [0, 1].
Updating is one ``bucketize`` and one ``bincount`` per batch; merging two (another process,
another chunk) is adding the histograms, which is exact, so a DDP all-reduce (SUM) of
:meth:`BinnedCurves.state_dict` gives the same result as one process seeing all pixels.

Bins. With ``n = n_bins`` the edges are ``t_k = k / n`` (k = 0..n). Bin ``k < n`` holds
``t_k <= p < t_(k+1)``; one more bin holds ``p >= 1`` (a saturated sigmoid gives exactly
1.0 in float32, and such pixels are tied, so keeping them apart costs nothing in accuracy).
A pixel is predicted landslide when ``prob >= threshold``, compared in float64, so the
confusion matrix at any edge ``t_k`` is exact: it is the sum of the bins ``>= k``.

Error of the binned AUCs. Binning treats all pixels of one bin as tied, as the exact
curves treat equal scores. Versus the exact values (scikit-learn's ``roc_auc_score`` and
``average_precision_score`` on the same probabilities):

- ROC-AUC. The exact AUC is P(s+ > s-) + ½·P(s+ = s-) over (positive, negative) pairs; the
  trapezoid over the binned curve counts every pair that shares a bin as ½ and every other
  pair exactly. So ``|error| <= ½ · Σ_k pos_k·neg_k / (P·N)`` (:meth:`roc_auc_error_bound`),
  half the fraction of pairs that fall in one bin; about ``1 / (2n)`` when the scores are
  spread evenly, and never more than ½ (all pixels in one bin).
- PR-AUC (average precision, AP = Σ (R_k − R_(k−1))·P_k, step-wise, no interpolation). Each
  positive pixel contributes ``precision / P`` at the threshold that first includes it.
  Binning gives the ``pos_k`` positives of bin k the precision at the bin's lower edge,
  ``B_k = pos_k·(TP'+pos_k)/(TP'+FP'+pos_k+neg_k)`` in all (TP', FP': counts in the bins
  above). The exact sum over those positives depends only on the order inside the bin: it
  is largest when they are tied above every negative of the bin,
  ``U_k = pos_k·(TP'+pos_k)/(TP'+FP'+pos_k)``, and smallest when they are distinct and below
  every negative, ``L_k = Σ_(j=1..pos_k) (TP'+j)/(TP'+FP'+neg_k+j)`` (any other order, ties
  included, lies in between; ``L_k <= B_k <= U_k``). Bins are independent, so
  ``|error| <= max(Σ_k (U_k − B_k), Σ_k (B_k − L_k)) / P`` (:meth:`pr_auc_error_bound`),
  and either side is reached by an order of the pixels inside the bins: the bound is tight.

Both bounds are reached (by data whose classes are ordered inside every bin), so they are
worst cases: where the order inside a bin is close to random the errors are smaller (on the
tests' logistic scores with ``n_bins=1000``: ROC-AUC 100-1700x, AP 2.5-7x below its bound,
both errors below 1e-3). Tests check that the bounds hold, that they are reached, and that
they stay within 2x of the error on data ordered inside the bins.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from scipy.special import digamma

from slidemap.config import check_threshold
from slidemap.evaluation.metrics import (
    METRIC_KEYS,
    ConfusionCounts,
    metrics_from_counts,
    valid_pixels,
)

logger = logging.getLogger(__name__)

#: bins of every :class:`BinnedCurves` slidemap makes: the threshold resolution of curves,
#: epoch metrics and ``best_f1`` (see the error bounds above).
DEFAULT_BINS = 1000

_SNAP_TOLERANCE = 1e-9


def labelled_probabilities(
    prob: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    valid: torch.Tensor | np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The labelled pixels of a batch: their probabilities as float64 (on the input's device;
    the CPU for MPS, which has no float64) and whether each is a landslide.

    Args:
        prob: any shape, float probabilities of landslide in [0, 1] (not logits).
        target: same shape, integer {0, 1, 255}; 255 = ignore (excluded).
        valid: optional bool, same shape; False pixels are excluded too.

    Raises:
        ValueError: shapes differ, ``prob`` is not floating point, or a probability is
            outside [0, 1] or NaN.
    """
    prob, target = torch.as_tensor(prob), torch.as_tensor(target)
    if prob.shape != target.shape:
        raise ValueError(f"prob {tuple(prob.shape)} and target {tuple(target.shape)} differ in shape")
    if not prob.is_floating_point():
        raise ValueError(f"prob must be floating point probabilities, got {prob.dtype}")
    keep = valid_pixels(target, None if valid is None else torch.as_tensor(valid))
    # float64 comparisons against bin edges make counts exact; MPS has no float64.
    device = torch.device("cpu") if prob.device.type == "mps" else prob.device
    p = prob[keep].to(device=device, dtype=torch.float64)
    if p.numel() and not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError("prob must lie in [0, 1] (NaN is not allowed); apply a sigmoid to logits first")
    return p, (target[keep] == 1).to(device)


class BinnedCurves:
    """Streaming histograms of landslide probabilities, split by the true label.

    Args:
        n_bins: number of bins of width ``1 / n_bins`` on [0, 1); thresholds are the
            ``n_bins + 1`` edges ``k / n_bins``.

    Attributes:
        positive: (n_bins + 1,) int64, count of landslide pixels per bin (last bin: p == 1).
        negative: (n_bins + 1,) int64, count of background pixels per bin.
    """

    def __init__(self, n_bins: int = DEFAULT_BINS) -> None:
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
        self.n_bins = n_bins
        self.positive = torch.zeros(n_bins + 1, dtype=torch.int64)
        self.negative = torch.zeros(n_bins + 1, dtype=torch.int64)

    def __repr__(self) -> str:
        return (
            f"BinnedCurves(n_bins={self.n_bins}, positive={self.n_positive}, "
            f"negative={self.n_negative})"
        )

    # ----------------------------------------------------------------------------- state
    @property
    def n_positive(self) -> int:
        """Number of landslide pixels seen (P)."""
        return int(self.positive.sum())

    @property
    def n_negative(self) -> int:
        """Number of background pixels seen (N)."""
        return int(self.negative.sum())

    @property
    def n_pixels(self) -> int:
        """Number of valid pixels seen (P + N)."""
        return self.n_positive + self.n_negative

    @property
    def thresholds(self) -> np.ndarray:
        """(n_bins + 1,) float64 bin edges ``k / n_bins``, ascending: the exact thresholds."""
        return np.arange(self.n_bins + 1, dtype=np.float64) / self.n_bins

    def to(self, device: torch.device | str) -> BinnedCurves:
        """Move the histograms to ``device`` (e.g. CUDA for an NCCL all-reduce); returns self."""
        self.positive = self.positive.to(device)
        self.negative = self.negative.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Copies of the two histograms, ``{"positive", "negative"}``: (n_bins + 1,) int64.

        Summing each tensor over processes (``all_reduce(SUM)``) and loading the sums gives
        exactly the curves of the union of the pixels: counts add without rounding.
        """
        return {"positive": self.positive.clone(), "negative": self.negative.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the histograms by ``state`` (from :meth:`state_dict`, possibly reduced)."""
        loaded = {}
        for key in ("positive", "negative"):
            if key not in state:
                raise ValueError(f"BinnedCurves state lacks {key!r}; has {sorted(state)}")
            hist = torch.as_tensor(state[key])
            if hist.shape != (self.n_bins + 1,) or hist.dtype != torch.int64:
                raise ValueError(
                    f"BinnedCurves state {key!r} is {hist.dtype} {tuple(hist.shape)}; "
                    f"expected torch.int64 ({self.n_bins + 1},) for n_bins={self.n_bins}"
                )
            if bool((hist < 0).any()):
                raise ValueError(f"BinnedCurves state {key!r} has negative counts")
            loaded[key] = hist.clone()
        self.positive, self.negative = loaded["positive"], loaded["negative"]

    # ---------------------------------------------------------------------------- update
    def update(
        self,
        prob: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        valid: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """Add a batch of pixels.

        Args:
            prob: any shape, float probabilities of landslide in [0, 1] (not logits).
            target: same shape, integer {0, 1, 255}; 255 = ignore (excluded).
            valid: optional bool, same shape; False pixels are excluded too.
        """
        p, is_positive = labelled_probabilities(prob, target, valid)
        device = p.device
        bins = self.n_bins + 1
        inner_edges = torch.arange(1, bins, dtype=torch.float64, device=device) / self.n_bins
        index = torch.bucketize(p, inner_edges, right=True)
        both = torch.bincount(index + bins * is_positive, minlength=2 * bins)
        if self.positive.device != device:
            self.to(device)
        self.negative += both[:bins]
        self.positive += both[bins:]

    def merge(self, other: BinnedCurves) -> BinnedCurves:
        """Add ``other``'s pixels to this one (exact); returns self."""
        if not isinstance(other, BinnedCurves) or other.n_bins != self.n_bins:
            raise ValueError(
                f"can only merge BinnedCurves with n_bins={self.n_bins}, got {other!r}"
            )
        self.positive += other.positive.to(self.positive.device)
        self.negative += other.negative.to(self.negative.device)
        return self

    # ------------------------------------------------------------------ confusion counts
    def snap_threshold(self, threshold: float) -> float:
        """The bin edge nearest ``threshold`` (in [0, 1]); logs when they differ.

        Raises:
            ConfigError: ``threshold`` is not a probability (:func:`~slidemap.config.check_threshold`).
        """
        threshold = check_threshold(threshold)
        snapped = round(threshold * self.n_bins) / self.n_bins
        if abs(snapped - threshold) > _SNAP_TOLERANCE:
            logger.info(
                "threshold %g is not a bin edge of %d bins; using %g",
                threshold,
                self.n_bins,
                snapped,
            )
        return snapped

    def _cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_bins + 1,) int64 each: TP and FP when predicting ``prob >= k / n_bins``."""
        tp = torch.flip(torch.cumsum(torch.flip(self.positive, [0]), 0), [0])
        fp = torch.flip(torch.cumsum(torch.flip(self.negative, [0]), 0), [0])
        return tp.cpu().numpy(), fp.cpu().numpy()

    def counts_at(self, threshold: float) -> ConfusionCounts:
        """Confusion matrix of ``prob >= threshold`` (float64 comparison).

        Exact when ``threshold`` is a bin edge ``k / n_bins``; any other threshold is first
        snapped to the nearest edge (:meth:`snap_threshold`).
        """
        k = round(self.snap_threshold(threshold) * self.n_bins)
        tp = int(self.positive[k:].sum())
        fp = int(self.negative[k:].sum())
        return ConfusionCounts(tp=tp, fp=fp, fn=self.n_positive - tp, tn=self.n_negative - fp)

    def best_f1_threshold(self) -> float:
        """Bin edge maximising F1 (= Dice) of ``prob >= threshold``.

        Among the edges reaching the maximum, the highest is taken, then moved to the middle
        of the run of edges just below it that give the very same confusion matrix (empty
        bins), so that a gap between the classes yields a threshold in the middle of the gap
        rather than at its edge. With no pixels at all this gives 0.5.
        """
        tp, fp = self._cumulative()
        fn = self.n_positive - tp
        denominator = (2 * tp + fp + fn).astype(np.float64)
        f1 = np.divide(2.0 * tp, denominator, out=np.zeros_like(denominator), where=denominator > 0)
        best = int(np.flatnonzero(f1 == f1.max())[-1])
        lowest = best
        while lowest > 0 and tp[lowest - 1] == tp[best] and fp[lowest - 1] == fp[best]:
            lowest -= 1
        return ((lowest + best) // 2) / self.n_bins

    # ---------------------------------------------------------------------------- curves
    def _curve_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TP, FP (int64) and thresholds (float64), by decreasing threshold from +inf to 0."""
        tp, fp = self._cumulative()
        thresholds = np.concatenate([[np.inf], self.thresholds[::-1]])
        return np.concatenate([[0], tp[::-1]]), np.concatenate([[0], fp[::-1]]), thresholds

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ROC curve ``(fpr, tpr, thresholds)``, each (n_bins + 2,) float64.

        Thresholds decrease from +inf (the point (0, 0)) to 0 (the point (1, 1)). A rate is
        NaN when its class is absent.
        """
        tp, fp, thresholds = self._curve_counts()
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = tp / np.float64(self.n_positive)
            fpr = fp / np.float64(self.n_negative)
        return fpr, tpr, thresholds

    def pr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Precision-recall curve ``(recall, precision, thresholds)``, each (n_bins + 2,) float64.

        Thresholds decrease from +inf to 0; precision is 1 where nothing is predicted
        positive (scikit-learn's convention). Recall is NaN when there is no positive pixel.
        """
        tp, fp, thresholds = self._curve_counts()
        predicted = tp + fp
        precision = np.divide(
            tp, predicted, out=np.ones(tp.shape, dtype=np.float64), where=predicted > 0
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = tp / np.float64(self.n_positive)
        return recall, precision, thresholds

    def roc_auc(self) -> float:
        """Area under the ROC curve (trapezoid); NaN when either class is absent."""
        if self.n_positive == 0 or self.n_negative == 0:
            return math.nan
        fpr, tpr, _ = self.roc()
        return float(np.trapezoid(tpr, fpr))

    def pr_auc(self) -> float:
        """Average precision ``Σ (R_k − R_(k−1))·P_k`` (step-wise, as scikit-learn's
        ``average_precision_score``); NaN when there is no positive pixel."""
        if self.n_positive == 0:
            return math.nan
        recall, precision, _ = self.pr()
        return float(np.sum(np.diff(recall) * precision[1:]))

    def roc_auc_error_bound(self) -> float:
        """Upper bound of ``|roc_auc() − exact ROC-AUC|``: ½ · Σ_k pos_k·neg_k / (P·N).

        The sum runs over the bins of non-zero width (the ``p == 1`` bin holds exact ties).
        NaN when either class is absent.
        """
        if self.n_positive == 0 or self.n_negative == 0:
            return math.nan
        pos = self.positive[:-1].double()
        neg = self.negative[:-1].double()
        same_bin_pairs = float((pos * neg).sum())
        return 0.5 * same_bin_pairs / (float(self.n_positive) * float(self.n_negative))

    def pr_auc_error_bound(self) -> float:
        """Upper bound of ``|pr_auc() − exact average precision|``, reached by some order of
        the pixels inside the bins (module docstring).

        ``max(Σ_k (U_k − B_k), Σ_k (B_k − L_k)) / P`` over bins of non-zero width, where for
        bin k with ``pos_k`` positives, ``neg_k`` negatives and TP', FP' counts above it,
        ``B_k = pos_k·(TP'+pos_k)/(TP'+FP'+pos_k+neg_k)`` (binned),
        ``U_k = pos_k·(TP'+pos_k)/(TP'+FP'+pos_k)`` (positives tied on top) and
        ``L_k = Σ_(j=1..pos_k) (TP'+j)/(TP'+FP'+neg_k+j)`` (positives below the negatives),
        summed in closed form with the digamma function. NaN with no positive pixel.
        """
        if self.n_positive == 0:
            return math.nan
        tp, fp = self._cumulative()
        has_positive = self.positive[:-1].cpu().numpy() > 0
        above_tp = tp[1:][has_positive].astype(np.float64)  # counts in bins > k
        above_fp = fp[1:][has_positive].astype(np.float64)
        pos = self.positive[:-1].cpu().numpy()[has_positive].astype(np.float64)
        neg = self.negative[:-1].cpu().numpy()[has_positive].astype(np.float64)
        binned = pos * (above_tp + pos) / (above_tp + above_fp + pos + neg)
        tied_on_top = pos * (above_tp + pos) / (above_tp + above_fp + pos)
        # Σ_(j=1..m) (a+j)/(c+j) = m − (c−a)·(ψ(c+m+1) − ψ(c+1)), c = a + FP' + neg_k
        before = above_tp + above_fp + neg
        below_all = pos - (above_fp + neg) * (digamma(before + pos + 1) - digamma(before + 1))
        worst = max(float(np.sum(tied_on_top - binned)), float(np.sum(binned - below_all)))
        return max(worst, 0.0) / self.n_positive

def compute_metrics(
    curves: BinnedCurves, threshold: float, counts: ConfusionCounts | None = None
) -> dict[str, float | int]:
    """Every ``metrics.json`` key (:data:`~slidemap.evaluation.metrics.METRIC_KEYS`), in order.

    Args:
        curves: the split's probability histograms (for ROC-AUC and PR-AUC).
        threshold: probability threshold of the confusion matrix, e.g. the validation
            split's :meth:`BinnedCurves.best_f1_threshold`.
        counts: the exact confusion matrix at ``threshold``, if counted separately (then any
            threshold is exact); otherwise taken from ``curves`` at the nearest bin edge, and
            ``threshold`` in the result is that edge.

    Returns:
        ``{tp, fp, fn, tn, accuracy, iou, dice, f1, precision, recall, specificity,
        balanced_accuracy, mcc, roc_auc, pr_auc, threshold, n_pixels}``.
    """
    if counts is None:
        threshold = curves.snap_threshold(threshold)
        counts = curves.counts_at(threshold)
    elif counts.n_pixels != curves.n_pixels:
        raise ValueError(
            f"counts cover {counts.n_pixels} pixels but curves cover {curves.n_pixels}; "
            "they must come from the same pixels"
        )
    metrics = metrics_from_counts(counts, threshold)
    metrics["roc_auc"] = curves.roc_auc()
    metrics["pr_auc"] = curves.pr_auc()
    return {key: metrics[key] for key in METRIC_KEYS}
