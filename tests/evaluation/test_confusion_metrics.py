"""Confusion-matrix metrics: agreement with scikit-learn, identities, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchmetrics.classification import BinaryStatScores

from slidemap.evaluation.metrics import (
    IGNORE_INDEX,
    ConfusionCounts,
    matthews_corrcoef,
    metrics_from_counts,
)


def _random_masks(seed: int, n: int = 20_000, positive_rate: float = 0.05):
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < positive_rate).astype(np.int64)
    # predictions correlated with the truth, with both kinds of error
    flip = rng.random(n) < 0.03
    predicted = np.where(flip, 1 - truth, truth)
    return predicted, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_metrics_match_sklearn(seed: int) -> None:
    predicted, truth = _random_masks(seed)
    counts = ConfusionCounts.from_predictions(torch.from_numpy(predicted), torch.from_numpy(truth))
    m = metrics_from_counts(counts, threshold=0.5)
    expected = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(truth, predicted, zero_division=0),
        "recall": skm.recall_score(truth, predicted, zero_division=0),
        "f1": skm.f1_score(truth, predicted, zero_division=0),
        "iou": skm.jaccard_score(truth, predicted, zero_division=0),
        "mcc": skm.matthews_corrcoef(truth, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(truth, predicted),
        "specificity": skm.recall_score(truth, predicted, pos_label=0, zero_division=0),
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-6), key
    tn, fp, fn, tp = skm.confusion_matrix(truth, predicted, labels=[0, 1]).ravel()
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (tp, fp, fn, tn)
    assert m["n_pixels"] == truth.size


def test_counts_agree_with_torchmetrics_stat_scores_and_exclude_ignore() -> None:
    rng = np.random.default_rng(3)
    truth = torch.from_numpy((rng.random((4, 32, 32)) < 0.2).astype(np.int64))
    truth[:, :3] = IGNORE_INDEX
    predicted = torch.from_numpy((rng.random((4, 32, 32)) < 0.3).astype(np.int64))
    counts = ConfusionCounts.from_predictions(predicted, truth)
    tp, fp, tn, fn, _ = BinaryStatScores(ignore_index=IGNORE_INDEX)(predicted, truth).tolist()
    assert counts.as_tuple() == (tp, fp, fn, tn)
    assert counts.n_pixels == 4 * 29 * 32


def test_valid_mask_excludes_pixels_like_ignore() -> None:
    truth = torch.tensor([[0, 1], [1, 0]])
    predicted = torch.tensor([[1, 1], [0, 0]])
    valid = torch.tensor([[True, True], [False, True]])
    with_valid = ConfusionCounts.from_predictions(predicted, truth, valid)
    with_ignore = ConfusionCounts.from_predictions(predicted, torch.tensor([[0, 1], [255, 0]]))
    assert with_valid == with_ignore == ConfusionCounts(tp=1, fp=1, fn=0, tn=1)


@pytest.mark.parametrize(
    "counts",
    [
        ConfusionCounts(tp=93206, fp=44347, fn=24159, tn=4_800_000),
        ConfusionCounts(tp=1, fp=0, fn=0, tn=0),
        ConfusionCounts(tp=0, fp=5, fn=7, tn=100),
        ConfusionCounts(tp=3, fp=0, fn=0, tn=9),
        ConfusionCounts(tp=17, fp=0, fn=4, tn=0),
    ],
)
def test_scores_of_counts_match_sklearn_on_weighted_pixels(counts: ConfusionCounts) -> None:
    # The four cells as four weighted samples: scikit-learn scores exactly those pixels.
    truth, predicted = [0, 0, 1, 1], [0, 1, 0, 1]
    weights = [counts.tn, counts.fp, counts.fn, counts.tp]
    m = metrics_from_counts(counts)
    expected = {
        "accuracy": skm.accuracy_score(truth, predicted, sample_weight=weights),
        "precision": skm.precision_score(truth, predicted, sample_weight=weights, zero_division=0),
        "recall": skm.recall_score(truth, predicted, sample_weight=weights, zero_division=0),
        "specificity": skm.recall_score(truth, predicted, pos_label=0, sample_weight=weights,
                                        zero_division=0),
        "f1": skm.f1_score(truth, predicted, sample_weight=weights, zero_division=0),
        "dice": skm.f1_score(truth, predicted, sample_weight=weights, zero_division=0),
        "iou": skm.jaccard_score(truth, predicted, sample_weight=weights, zero_division=0),
    }
    if counts.n_positive and counts.n_negative:  # scikit-learn's differ with one class absent
        expected["balanced_accuracy"] = skm.balanced_accuracy_score(truth, predicted, sample_weight=weights)
        expected["mcc"] = skm.matthews_corrcoef(truth, predicted, sample_weight=weights)
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key
    # Dice and IoU, each computed on its own, obey Dice = 2·IoU / (1 + IoU)
    assert m["dice"] == pytest.approx(2 * m["iou"] / (1 + m["iou"]), abs=1e-12)


def test_balanced_accuracy_with_one_class_absent_keeps_the_mean_of_recall_and_specificity() -> None:
    # documented difference from scikit-learn: no landslide pixel gives recall 0, and the
    # mean with specificity 12/17 (scikit-learn would average the recalls present only)
    m = metrics_from_counts(ConfusionCounts(tp=0, fp=5, fn=0, tn=12))
    assert m["balanced_accuracy"] == pytest.approx(0.5 * 12 / 17)


def test_no_positive_pixels_gives_zero_recall_and_mcc_not_nan() -> None:
    m = metrics_from_counts(ConfusionCounts(tp=0, fp=3, fn=0, tn=97))
    assert (m["recall"], m["precision"], m["iou"], m["dice"], m["mcc"]) == (0, 0, 0, 0, 0)
    assert m["specificity"] == pytest.approx(0.97)
    assert m["balanced_accuracy"] == pytest.approx(0.485)
    assert m["accuracy"] == pytest.approx(0.97)


def test_all_positive_pixels_all_predicted_positive() -> None:
    m = metrics_from_counts(ConfusionCounts(tp=50, fp=0, fn=0, tn=0))
    assert (m["accuracy"], m["precision"], m["recall"], m["iou"], m["dice"]) == (1, 1, 1, 1, 1)
    assert m["specificity"] == 0.0
    assert m["mcc"] == 0.0  # the negative marginals are empty


def test_empty_counts_give_finite_zeros() -> None:
    m = metrics_from_counts(ConfusionCounts())
    assert m["n_pixels"] == 0
    assert all(math.isfinite(v) and v == 0 for k, v in m.items() if k != "threshold")


def test_mcc_is_exact_and_finite_for_huge_counts() -> None:
    big = 2**61
    counts = ConfusionCounts(tp=big, fp=big // 3, fn=big // 5, tn=big)
    as_float = [float(v) for v in counts.as_tuple()]
    tp, fp, fn, tn = as_float
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert matthews_corrcoef(counts) == pytest.approx(expected, rel=1e-12)
    assert matthews_corrcoef(ConfusionCounts(tp=big, tn=big)) == 1.0


def test_counts_add_and_reject_bad_values() -> None:
    a = ConfusionCounts(tp=1, fp=2, fn=3, tn=4)
    b = ConfusionCounts(tp=np.int64(10), fp=torch.tensor(20), fn=30, tn=40)
    assert a + b == ConfusionCounts(11, 22, 33, 44)
    assert a.as_matrix() == [[4, 2], [3, 1]]
    with pytest.raises(ValueError, match="outside int64"):
        ConfusionCounts(tp=-1)
    with pytest.raises(TypeError, match="integer"):
        ConfusionCounts(tp=1.5)


def test_target_with_unexpected_values_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1, 3\]"):
        ConfusionCounts.from_predictions(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 3]))


def test_threshold_is_recorded_and_keys_are_complete() -> None:
    m = metrics_from_counts(ConfusionCounts(1, 1, 1, 1), threshold=0.37)
    assert m["threshold"] == 0.37
    assert set(m) == {
        "tp", "fp", "fn", "tn", "accuracy", "iou", "dice", "f1", "precision", "recall",
        "specificity", "balanced_accuracy", "mcc", "n_pixels", "threshold",
    }  # fmt: skip
