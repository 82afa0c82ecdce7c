"""Loss maths against hand-computed values and torch references; 255 is ignored."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import jaccard_score

from slidemap.errors import ConfigError
from slidemap.training.losses import (
    LOSSES,
    CombinedLoss,
    DiceLoss,
    FocalLoss,
    LovaszHingeLoss,
    TverskyLoss,
    WeightedBCELoss,
    build_loss,
    list_losses,
    needs_class_counts,
)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]]]])  # (1, 1, 2, 2)
    target = torch.tensor([[[1, 0], [255, 0]]])  # one ignored pixel
    return logits, target


def test_registry_names_every_loss_of_the_spec() -> None:
    assert set(list_losses()) >= {"bce", "weighted_bce", "dice", "focal", "tversky", "lovasz"}


def test_bce_is_eq19_mean_over_valid_pixels() -> None:
    logits, target = _batch()
    p = torch.sigmoid(torch.tensor([2.0, -1.0, 3.0]))
    y = torch.tensor([1.0, 0.0, 0.0])
    by_hand = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert LOSSES["bce"]()(logits, target).item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_bce_ignores_255_pixels_whatever_their_logit() -> None:
    logits, target = _batch()
    changed = logits.clone()
    changed[0, 0, 1, 0] = -50.0
    loss = LOSSES["bce"]()
    assert loss(logits, target).item() == pytest.approx(loss(changed, target).item())


def test_weighted_bce_matches_torch_pos_weight_and_auto_ratio() -> None:
    logits, target = _batch()
    x, y = torch.tensor([2.0, -1.0, 3.0]), torch.tensor([1.0, 0.0, 0.0])
    reference = F.binary_cross_entropy_with_logits(x, y, pos_weight=torch.tensor(4.0))
    assert WeightedBCELoss(pos_weight=4.0)(logits, target).item() == pytest.approx(reference.item())
    auto = WeightedBCELoss("auto", class_counts=(10, 40))
    assert auto.pos_weight == pytest.approx(4.0)
    with pytest.raises(ConfigError, match="class counts"):
        WeightedBCELoss("auto")


def test_dice_of_a_perfect_saturated_prediction_is_near_zero_and_hand_value() -> None:
    target = torch.tensor([[[1, 0], [0, 1]]])
    perfect = (target.float() * 40 - 20).unsqueeze(1)
    assert DiceLoss(smooth=0.0)(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    zero_logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere: 1 - (2*1 + 1)/(2 + 2 + 1)
    assert DiceLoss(smooth=1.0)(zero_logits, target).item() == pytest.approx(1 - 3 / 5)


def test_focal_with_gamma_zero_and_no_alpha_equals_bce() -> None:
    logits, target = _batch()
    assert FocalLoss(alpha=None, gamma=0.0)(logits, target).item() == pytest.approx(
        LOSSES["bce"]()(logits, target).item())


def test_focal_hand_value_for_one_pixel() -> None:
    logits, target = torch.tensor([[[[0.0]]]]), torch.tensor([[[1]]])
    # p_t = 0.5: -alpha * (1 - 0.5)^2 * log 0.5
    assert FocalLoss(alpha=0.25, gamma=2.0)(logits, target).item() == pytest.approx(
        0.25 * 0.25 * math.log(2))


def test_focal_weights_background_pixels_by_one_minus_alpha() -> None:
    logits, target = torch.tensor([[[[1.0]]]]), torch.tensor([[[0]]])
    p = 1 / (1 + math.exp(-1.0))  # probability of landslide; the true class has 1 - p
    expected = -(1 - 0.25) * p**2 * math.log(1 - p)
    assert FocalLoss(alpha=0.25, gamma=2.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_tversky_weights_false_positives_by_alpha_and_false_negatives_by_beta() -> None:
    logits, target = _batch()  # valid pixels: logits 2, -1, 3 against 1, 0, 0
    p = torch.sigmoid(torch.tensor([2.0, -1.0, 3.0], dtype=torch.float64))
    tp, fp, fn = p[0], p[1] + p[2], 1 - p[0]
    expected = 1 - (tp + 1) / (tp + 0.3 * fp + 0.7 * fn + 1)
    assert TverskyLoss(alpha=0.3, beta=0.7)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    swapped = 1 - (tp + 1) / (tp + 0.7 * fp + 0.3 * fn + 1)
    assert abs(expected - swapped) > 0.01  # the case tells alpha from beta


def test_tversky_with_half_weights_equals_dice() -> None:
    logits, target = _batch()
    assert TverskyLoss(0.5, 0.5, smooth=0.0)(logits, target).item() == pytest.approx(
        DiceLoss(smooth=0.0)(logits, target).item())


def test_lovasz_hinge_hand_values() -> None:
    # one positive pixel, logit 0: error 1, gradient 1 -> loss 1
    assert LovaszHingeLoss()(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, dtype=torch.long)).item() \
        == pytest.approx(1.0)
    # confidently right everywhere: every hinge error is 0
    target = torch.tensor([[[1, 0]]])
    assert LovaszHingeLoss()(torch.tensor([[[[5.0, -5.0]]]]), target).item() == pytest.approx(0.0)


def _jaccard_set_loss(errors: np.ndarray, target: np.ndarray) -> float:
    """Δ_J(M) = |M| / |{y = 1} ∪ M| of the set M of mispredicted pixels (Berman 2018, Eq. 6)."""
    union = np.count_nonzero((target == 1) | errors)
    return np.count_nonzero(errors) / union if union else 0.0


def _lovasz_hinge_by_definition(logits: np.ndarray, target: np.ndarray) -> float:
    """float64 Lovász hinge from its definition, without sorting by error: the Lovász
    extension of Δ_J at the hinge errors m = max(0, 1 − x·s) is the Choquet integral
    ∫_0^∞ Δ_J({i : m_i ≥ t}) dt, a sum over the distinct error levels."""
    signs = 2.0 * target - 1.0
    errors = np.maximum(0.0, 1.0 - logits.astype(np.float64) * signs)
    levels = np.unique(np.concatenate([[0.0], errors]))  # ascending, 0 first
    return float(sum((high - low) * _jaccard_set_loss(errors >= high, target)
                     for low, high in zip(levels[:-1], levels[1:], strict=True)))


@pytest.mark.parametrize("seed", range(5))
def test_lovasz_hinge_equals_the_lovasz_extension_by_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = torch.from_numpy(rng.integers(0, 2, (2, 6, 7)))
    target[0, 0, :3] = 255  # ignored pixels take no part
    logits = torch.from_numpy(rng.normal(scale=2.0, size=(2, 1, 6, 7)).astype(np.float32))
    valid = (target != 255).numpy()
    expected = _lovasz_hinge_by_definition(logits[:, 0].numpy()[valid], target.numpy()[valid])
    assert LovaszHingeLoss()(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_lovasz_hinge_of_unit_margins_is_one_minus_the_iou_of_the_prediction() -> None:
    # Errors of 0 (correct pixels, logit ±1) and 1 (wrong ones, logit 0) are an indicator
    # vector, where the Lovász extension equals the set function: the Jaccard loss.
    rng = np.random.default_rng(9)
    target = rng.integers(0, 2, (3, 8, 8))
    predicted = np.where(rng.random(target.shape) < 0.3, 1 - target, target)
    logits = np.where(predicted == target, 2.0 * target - 1.0, 0.0).astype(np.float32)
    loss = LovaszHingeLoss()(torch.from_numpy(logits)[:, None], torch.from_numpy(target)).item()
    iou = jaccard_score(target.ravel(), predicted.ravel())
    assert loss == pytest.approx(1.0 - iou, rel=1e-6)


def test_every_loss_has_a_gradient_and_survives_an_all_ignored_batch() -> None:
    target = torch.full((2, 4, 4), 255)
    for name, cls in LOSSES.items():
        loss = cls(pos_weight=2.0) if name == "weighted_bce" else cls()
        logits = torch.randn(2, 1, 4, 4, requires_grad=True)
        value = loss(logits, target)
        value.backward()
        assert value.item() == 0.0, name
        mixed = torch.randint(0, 2, (2, 4, 4))
        logits.grad = None
        loss(logits, mixed).backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0, name


def test_combined_loss_is_the_weighted_sum_of_its_terms() -> None:
    logits, target = _batch()
    combined = build_loss([{"name": "bce", "weight": 0.5}, {"name": "dice", "weight": 2.0}])
    assert isinstance(combined, CombinedLoss)
    expected = 0.5 * LOSSES["bce"]()(logits, target) + 2.0 * DiceLoss()(logits, target)
    assert combined(logits, target).item() == pytest.approx(expected.item())


def test_build_loss_rejects_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'dise'"):
        build_loss([{"name": "dise"}])
    with pytest.raises(ConfigError, match="bad options"):
        build_loss([{"name": "dice", "options": {"smoothing": 1}}])


def test_needs_class_counts_only_for_auto_weighted_bce() -> None:
    assert needs_class_counts([{"name": "weighted_bce"}])
    assert not needs_class_counts([{"name": "weighted_bce", "options": {"pos_weight": 3}}])
    assert not needs_class_counts([{"name": "bce"}])
