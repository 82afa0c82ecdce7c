"""Loss maths against hand-computed values and torch references; 255 is ignored."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

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
