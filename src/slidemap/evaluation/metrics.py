"""Pixel metrics of binary landslide segmentation, all from one confusion matrix (paper §2.5).

A split is scored as one confusion matrix over all its valid pixels (target 0 or 1; target
255 = ignore is excluded), never as a mean of per-patch scores. Every score is a small
function of the four counts, so the identities the paper's Table 1 breaks hold here by
construction: ``dice == f1 == 2·iou / (1 + iou)`` and
``balanced_accuracy == (recall + specificity) / 2``.

Zero-division conventions (a ratio whose denominator is zero is 0, never NaN, so every key
is a finite JSON number):

========================  ==================================  ===========================
metric                    formula                             when the denominator is 0
========================  ==================================  ===========================
accuracy                  (TP+TN) / (TP+FP+FN+TN)             0 (no valid pixel)
precision                 TP / (TP+FP)                        0 (nothing predicted positive)
recall (sensitivity)      TP / (TP+FN)                        0 (no positive pixel)
specificity               TN / (TN+FP)                        0 (no negative pixel)
iou (Jaccard, Eq. 20)     TP / (TP+FP+FN)                     0
dice = f1 (Eq. 22)        2·TP / (2·TP+FP+FN)                 0
balanced_accuracy         (recall + specificity) / 2          follows recall, specificity
mcc                       (TP·TN − FP·FN) / √(product of      0 (a marginal is empty)
                          the four marginals)
========================  ==================================  ===========================

Precision, recall, F1, IoU and MCC match scikit-learn with ``zero_division=0``. Balanced
accuracy differs from scikit-learn only when one class is absent (scikit-learn then
averages the recalls of the classes present); ours keeps the identity above.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, fields

import torch

from slidemap.data.l4s import IGNORE_INDEX

COUNT_KEYS: tuple[str, ...] = ("tp", "fp", "fn", "tn")
SCORE_KEYS: tuple[str, ...] = (
    "accuracy",
    "iou",
    "dice",
    "f1",
    "precision",
    "recall",
    "specificity",
    "balanced_accuracy",
    "mcc",
)
AUC_KEYS: tuple[str, ...] = ("roc_auc", "pr_auc")
METRIC_KEYS: tuple[str, ...] = (*COUNT_KEYS, *SCORE_KEYS, *AUC_KEYS, "threshold", "n_pixels")
"""Every key of ``metrics.json`` (SPEC, "The interface"), in the order it is written."""

_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts of a binary confusion matrix; ``a + b`` merges two (exact, integer).

    Args:
        tp: landslide pixels predicted landslide.
        fp: background pixels predicted landslide.
        fn: landslide pixels predicted background.
        tn: background pixels predicted background.

    Counts are Python ints in ``[0, 2**63)`` (int64 range, so they round-trip through
    int64 tensors for distributed reduction); numpy and torch integer scalars are accepted.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            raw = getattr(self, field.name)
            if isinstance(raw, torch.Tensor):
                raw = raw.item()
            try:
                value = operator.index(raw)
            except TypeError:
                raise TypeError(
                    f"ConfusionCounts.{field.name} must be an integer, got {raw!r}"
                ) from None
            if not 0 <= value <= _INT64_MAX:
                raise ValueError(
                    f"ConfusionCounts.{field.name}={value} is outside int64 [0, 2**63)"
                )
            object.__setattr__(self, field.name, value)

    @classmethod
    def from_predictions(
        cls,
        predicted: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> ConfusionCounts:
        """Count a batch of binary predictions against targets.

        Args:
            predicted: any shape, bool or integer {0, 1} (e.g. ``prob >= threshold``).
            target: same shape, integer {0, 1, 255}; 255 = ignore.
            valid: optional bool mask of the same shape; False pixels are excluded too.
        """
        if predicted.shape != target.shape:
            raise ValueError(
                f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} differ in shape"
            )
        keep = valid_pixels(target, valid)
        positive_pred = predicted[keep].bool()
        positive_true = target[keep] == 1
        tp = int((positive_pred & positive_true).sum())
        fp = int((positive_pred & ~positive_true).sum())
        fn = int((~positive_pred & positive_true).sum())
        return cls(tp=tp, fp=fp, fn=fn, tn=int(keep.sum()) - tp - fp - fn)

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        if not isinstance(other, ConfusionCounts):
            return NotImplemented
        return ConfusionCounts(
            *(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True))
        )

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(tp, fp, fn, tn)``."""
        return (self.tp, self.fp, self.fn, self.tn)

    def as_matrix(self) -> list[list[int]]:
        """2×2 matrix, rows = true label (0, 1), columns = predicted label: ``[[TN, FP], [FN, TP]]``."""
        return [[self.tn, self.fp], [self.fn, self.tp]]

    @property
    def n_pixels(self) -> int:
        """Number of valid pixels counted."""
        return self.tp + self.fp + self.fn + self.tn

    @property
    def n_positive(self) -> int:
        """Number of valid pixels whose target is landslide (TP + FN)."""
        return self.tp + self.fn

    @property
    def n_negative(self) -> int:
        """Number of valid pixels whose target is background (TN + FP)."""
        return self.tn + self.fp


def valid_pixels(target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask of the pixels that count: target in {0, 1} and ``valid`` (if given) True.

    Raises:
        ValueError: a target value other than 0, 1 or 255, or ``valid`` of another shape.
    """
    if valid is not None and valid.shape != target.shape:
        raise ValueError(
            f"valid {tuple(valid.shape)} and target {tuple(target.shape)} differ in shape"
        )
    labelled = target != IGNORE_INDEX
    if bool(((target != 0) & (target != 1) & labelled).any()):
        found = sorted(int(v) for v in torch.unique(target))
        raise ValueError(f"target has values {found}; expected 0/1 ({IGNORE_INDEX} = ignore)")
    return labelled if valid is None else labelled & valid.bool()


def _ratio(numerator: int | float, denominator: int | float) -> float:
    """``numerator / denominator`` as float, 0.0 when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else 0.0


def matthews_corrcoef(counts: ConfusionCounts) -> float:
    """Matthews correlation coefficient in [-1, 1]; 0 when any marginal is empty.

    The numerator is exact (Python ints); the denominator is the product of two float64
    square roots, so it neither overflows nor loses precision for counts up to 2**63.
    """
    tp, fp, fn, tn = counts.as_tuple()
    marginals = (tp + fp, tp + fn, tn + fp, tn + fn)
    if min(marginals) == 0:
        return 0.0
    numerator = tp * tn - fp * fn
    denominator = math.sqrt(marginals[0] * marginals[1]) * math.sqrt(marginals[2] * marginals[3])
    return max(-1.0, min(1.0, numerator / denominator))


def metrics_from_counts(counts: ConfusionCounts, threshold: float = 0.5) -> dict[str, float | int]:
    """Every ``metrics.json`` key except the AUCs, from one confusion matrix.

    Args:
        counts: the split's confusion matrix (valid pixels only).
        threshold: probability threshold that produced ``counts`` (pixel is landslide when
            ``prob >= threshold``); recorded, not used.

    Returns:
        ``{tp, fp, fn, tn, accuracy, iou, dice, f1, precision, recall, specificity,
        balanced_accuracy, mcc, threshold, n_pixels}``: counts as int, scores as float in
        [0, 1] (MCC in [-1, 1]). Zero denominators give 0 (module docstring).
    """
    tp, fp, fn, tn = counts.as_tuple()
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "accuracy": _ratio(tp + tn, counts.n_pixels),
        "iou": _ratio(tp, tp + fp + fn),
        "dice": dice,
        "f1": dice,
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "balanced_accuracy": (recall + specificity) / 2.0,
        "mcc": matthews_corrcoef(counts),
        "threshold": float(threshold),
        "n_pixels": counts.n_pixels,
    }
