"""Binned ROC / PR curves: agreement with exact scikit-learn values, bounds, streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torchmetrics.classification import BinaryAUROC

from slidemap.errors import ConfigError
from slidemap.evaluation.curves import BinnedCurves, compute_metrics
from slidemap.evaluation.metrics import METRIC_KEYS, ConfusionCounts, metrics_from_counts


def _scores(seed: int, n: int = 100_000, separation: float = 1.5, positive_rate: float = 0.04):
    """float32 probabilities (logistic of shifted normals) and {0, 1} int64 targets."""
    rng = np.random.default_rng(seed)
    target = (rng.random(n) < positive_rate).astype(np.int64)
    logit = rng.normal(size=n) + separation * target - 2.0
    prob = torch.sigmoid(torch.from_numpy(logit).float())
    return prob, torch.from_numpy(target)


@pytest.mark.parametrize(("seed", "separation"), [(0, 0.5), (1, 1.5), (2, 3.0)])
def test_binned_aucs_match_sklearn_within_tolerance_and_bound(seed: int, separation: float) -> None:
    prob, target = _scores(seed, separation=separation)
    curves = BinnedCurves(n_bins=1000)
    curves.update(prob, target)
    exact_roc = roc_auc_score(target.numpy(), prob.double().numpy())
    exact_ap = average_precision_score(target.numpy(), prob.double().numpy())
    roc_error = abs(curves.roc_auc() - exact_roc)
    ap_error = abs(curves.pr_auc() - exact_ap)
    assert roc_error < 1e-3
    assert ap_error < 1e-3
    assert roc_error <= curves.roc_auc_error_bound() + 1e-12
    assert ap_error <= curves.pr_auc_error_bound() + 1e-12


def test_roc_auc_bound_is_reached_when_classes_share_one_bin() -> None:
    # Every positive just above every negative, all inside bin 500 of 1000: the exact AUC
    # is 1, binning sees ties (0.5), and the bound says at most 0.5: it is tight.
    curves = BinnedCurves(n_bins=1000)
    prob = torch.tensor([0.5001, 0.5002, 0.5006, 0.5008], dtype=torch.float64)
    curves.update(prob, torch.tensor([0, 0, 1, 1]))
    assert curves.roc_auc() == pytest.approx(0.5)
    assert curves.roc_auc_error_bound() == pytest.approx(0.5)
    assert abs(curves.pr_auc() - 1.0) <= curves.pr_auc_error_bound() + 1e-12


def _ordered_in_bins(seed: int, n_bins: int, positive_from: float, negative_to: float,
                     n: int = 20_000, tie_positives: bool = False):
    """Scores binned like ``_scores`` but placed inside their bin by class: positives in the
    upper ``[positive_from, 1)`` of the bin, negatives in the lower ``[0, negative_to)``
    (all positives of a bin tied at 0.9 with ``tie_positives``): binning then errs one way
    in every bin, the worst case the bounds describe."""
    rng = np.random.default_rng(seed)
    target = (rng.random(n) < 0.1).astype(np.int64)
    prob = 1.0 / (1.0 + np.exp(1.0 - rng.normal(size=n) - 1.5 * target))
    bin_index = np.minimum(np.floor(prob * n_bins), n_bins - 1)
    inside = np.where(target == 1, rng.uniform(positive_from, 1.0, n), rng.uniform(0.0, negative_to, n))
    if tie_positives:
        inside = np.where(target == 1, 0.9, inside)
    return torch.from_numpy((bin_index + inside) / n_bins), torch.from_numpy(target)


def _errors_and_bounds(prob: torch.Tensor, target: torch.Tensor, n_bins: int):
    curves = BinnedCurves(n_bins)
    curves.update(prob, target)
    roc_error = abs(curves.roc_auc() - roc_auc_score(target.numpy(), prob.numpy()))
    ap_error = abs(curves.pr_auc() - average_precision_score(target.numpy(), prob.numpy()))
    return (roc_error, curves.roc_auc_error_bound()), (ap_error, curves.pr_auc_error_bound())


@pytest.mark.parametrize("n_bins", [10, 1000])
def test_error_bounds_are_reached_when_classes_are_ordered_inside_every_bin(n_bins: int) -> None:
    # Every same-bin (positive, negative) pair is ordered, and the positives of a bin are
    # tied above its negatives: the exact AUCs differ from the binned ones by the bounds.
    prob, target = _ordered_in_bins(0, n_bins, 0.5, 0.5, tie_positives=True)
    (roc_error, roc_bound), (ap_error, ap_bound) = _errors_and_bounds(prob, target, n_bins)
    assert roc_error > 1e-4 and ap_error > 1e-4  # the errors are not trivial
    assert roc_error == pytest.approx(roc_bound, rel=1e-9)
    assert ap_error == pytest.approx(ap_bound, rel=1e-9)


@pytest.mark.parametrize(("n_bins", "positive_from", "negative_to"),
                         [(10, 0.5, 0.5), (50, 0.3, 0.7), (1000, 0.4, 0.6), (1000, 0.3, 0.7)])
def test_error_bounds_hold_and_are_within_twice_the_measured_error(
        n_bins: int, positive_from: float, negative_to: float) -> None:
    prob, target = _ordered_in_bins(1, n_bins, positive_from, negative_to)
    for error, bound in _errors_and_bounds(prob, target, n_bins):
        assert error > 1e-4
        assert error <= bound + 1e-12
        assert bound <= 2 * error


def test_error_bounds_hold_on_small_sets_with_ties_and_scores_on_edges() -> None:
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 150:
        n, n_bins, levels = int(rng.integers(2, 40)), int(rng.integers(1, 6)), int(rng.integers(1, 30))
        target = rng.integers(0, 2, n)
        if target.min() == target.max():
            continue
        prob = rng.integers(0, levels + 1, n) / levels  # heavy ties, 0 and 1, bin edges
        (roc_error, roc_bound), (ap_error, ap_bound) = _errors_and_bounds(
            torch.from_numpy(prob), torch.from_numpy(target), n_bins)
        assert roc_error <= roc_bound + 1e-12 and ap_error <= ap_bound + 1e-12, (prob, target)
        checked += 1


def test_binned_roc_auc_agrees_with_torchmetrics_binned_auroc() -> None:
    prob, target = _scores(4, n=20_000)
    curves = BinnedCurves(n_bins=100)
    curves.update(prob, target)
    reference = BinaryAUROC(thresholds=torch.linspace(0, 1, 101))(prob, target)
    assert curves.roc_auc() == pytest.approx(float(reference), abs=1e-4)


def test_streaming_in_chunks_equals_one_shot() -> None:
    prob, target = _scores(5, n=30_000)
    whole = BinnedCurves(200)
    whole.update(prob, target)
    chunked = BinnedCurves(200)
    for prob_chunk, target_chunk in zip(prob.split(7_001), target.split(7_001), strict=True):
        chunked.update(prob_chunk, target_chunk)
    assert torch.equal(whole.positive, chunked.positive)
    assert torch.equal(whole.negative, chunked.negative)
    assert chunked.roc_auc() == whole.roc_auc()


def test_merge_and_summed_state_dicts_equal_the_union() -> None:
    prob, target = _scores(6, n=20_000)
    union = BinnedCurves(300)
    union.update(prob, target)
    parts = [BinnedCurves(300) for _ in range(3)]
    for part, p, t in zip(parts, prob.chunk(3), target.chunk(3), strict=True):
        part.update(p, t)
    # what an all_reduce(SUM) over three processes does
    states = [part.state_dict() for part in parts]
    reduced = {key: sum(state[key] for state in states) for key in states[0]}
    from_states = BinnedCurves(300)
    from_states.load_state_dict(reduced)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    for curves in (merged, from_states):
        assert torch.equal(curves.positive, union.positive)
        assert torch.equal(curves.negative, union.negative)
        assert curves.pr_auc() == union.pr_auc()


def test_load_state_dict_rejects_wrong_shape_and_merge_rejects_other_bins() -> None:
    with pytest.raises(ValueError, match="n_bins=10"):
        BinnedCurves(10).load_state_dict(BinnedCurves(20).state_dict())
    with pytest.raises(ValueError, match="n_bins=10"):
        BinnedCurves(10).merge(BinnedCurves(20))


def test_counts_at_edges_are_exact_including_probabilities_on_edges() -> None:
    n_bins = 10
    rng = np.random.default_rng(7)
    edges = np.arange(n_bins + 1) / n_bins
    prob = np.concatenate([rng.random(5_000), edges, edges, [0.0, 1.0, 1.0]])
    target = (rng.random(prob.size) < 0.3).astype(np.int64)
    curves = BinnedCurves(n_bins)
    curves.update(torch.from_numpy(prob), torch.from_numpy(target))
    for threshold in edges:
        predicted = torch.from_numpy((prob >= threshold).astype(np.int64))
        direct = ConfusionCounts.from_predictions(predicted, torch.from_numpy(target))
        assert curves.counts_at(float(threshold)) == direct, threshold


def test_counts_at_snaps_a_threshold_between_edges() -> None:
    curves = BinnedCurves(10)
    curves.update(torch.tensor([0.1, 0.31, 0.36, 0.9]), torch.tensor([0, 1, 1, 1]))
    assert curves.snap_threshold(0.33) == pytest.approx(0.3)
    assert curves.counts_at(0.33) == ConfusionCounts(tp=3, fp=0, fn=0, tn=1)
    with pytest.raises(ConfigError, match=r"threshold must lie in \[0, 1\], got 1.5"):
        curves.counts_at(1.5)  # the one threshold check (slidemap.config.check_threshold)


def test_ignore_and_valid_pixels_are_excluded() -> None:
    curves = BinnedCurves(10)
    curves.update(
        torch.tensor([0.2, 0.8, 0.9, 0.95]),
        torch.tensor([0, 1, 255, 1]),
        valid=torch.tensor([True, True, True, False]),
    )
    assert (curves.n_negative, curves.n_positive) == (1, 1)


def test_update_rejects_logits_and_nan() -> None:
    curves = BinnedCurves(10)
    with pytest.raises(ValueError, match="sigmoid"):
        curves.update(torch.tensor([-2.0, 3.0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        curves.update(torch.tensor([float("nan"), 0.5]), torch.tensor([0, 1]))


def test_best_f1_threshold_matches_brute_force_over_edges() -> None:
    prob, target = _scores(8, n=20_000, separation=2.0)
    curves = BinnedCurves(100)
    curves.update(prob, target)
    p = prob.double()
    f1_at = {}
    for k in range(101):
        predicted = (p >= k / 100).long()
        counts = ConfusionCounts.from_predictions(predicted, target)
        f1_at[k] = metrics_from_counts(counts)["f1"]
    best = curves.best_f1_threshold()
    k_best = round(best * 100)
    assert best == k_best / 100
    assert f1_at[k_best] == pytest.approx(max(f1_at.values()), abs=1e-12)


def test_best_f1_threshold_sits_in_the_middle_of_a_gap_between_classes() -> None:
    curves = BinnedCurves(100)
    curves.update(torch.tensor([0.05, 0.1, 0.15, 0.8, 0.9]), torch.tensor([0, 0, 0, 1, 1]))
    # every edge in (0.15, 0.80] separates perfectly; the middle of that run is chosen
    assert curves.best_f1_threshold() == pytest.approx(0.48)
    assert BinnedCurves(100).best_f1_threshold() == 0.5  # no pixels at all


def test_roc_and_pr_curves_have_sklearn_end_points() -> None:
    prob, target = _scores(9, n=5_000)
    curves = BinnedCurves(50)
    curves.update(prob, target)
    fpr, tpr, roc_thresholds = curves.roc()
    recall, precision, pr_thresholds = curves.pr()
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert roc_thresholds[0] == math.inf and roc_thresholds[-1] == 0.0
    assert (recall[0], precision[0], recall[-1]) == (0.0, 1.0, 1.0)
    assert precision[-1] == pytest.approx(curves.n_positive / curves.n_pixels)
    np.testing.assert_array_equal(roc_thresholds, pr_thresholds)


def test_aucs_are_nan_when_a_class_is_absent() -> None:
    curves = BinnedCurves(10)
    curves.update(torch.tensor([0.2, 0.7]), torch.tensor([0, 0]))
    assert math.isnan(curves.roc_auc()) and math.isnan(curves.pr_auc())
    only_positive = BinnedCurves(10)
    only_positive.update(torch.tensor([0.2, 0.7]), torch.tensor([1, 1]))
    assert math.isnan(only_positive.roc_auc())
    assert only_positive.pr_auc() == 1.0


def test_compute_metrics_has_every_spec_key_in_order() -> None:
    prob, target = _scores(10, n=5_000)
    curves = BinnedCurves(1000)
    curves.update(prob, target)
    result = compute_metrics(curves, 0.4)
    assert tuple(result) == METRIC_KEYS
    assert result["threshold"] == 0.4
    assert result["roc_auc"] == curves.roc_auc()
    exact = ConfusionCounts.from_predictions(prob >= 0.4123, target)
    with_counts = compute_metrics(curves, 0.4123, counts=exact)
    assert (with_counts["tp"], with_counts["threshold"]) == (exact.tp, 0.4123)
    with pytest.raises(ValueError, match="same pixels"):
        compute_metrics(curves, 0.5, counts=ConfusionCounts(tp=1))

