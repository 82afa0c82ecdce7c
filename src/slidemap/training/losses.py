"""Segmentation losses with one call signature, so they combine (like smp's ``losses/``).

Every loss is called as ``loss(logits, target) -> scalar`` with

- ``logits``: ``(B, 1, H, W)`` (or ``(B, H, W)``) float, before the sigmoid;
- ``target``: ``(B, H, W)`` integer {0, 1, 255}; pixels equal to 255 are ignored.

Region losses (Dice, Tversky, Lovász) are computed over all valid pixels of the batch at
once (not averaged per image), which is stable when most patches have no landslide. A
batch with no valid pixel gives a zero loss that still has a gradient path (for DDP).

``build_loss(terms)`` turns the config's list of ``{name, weight, options}`` into a
:class:`CombinedLoss`, the weighted sum of its terms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slidemap.data.l4s import IGNORE_INDEX
from slidemap.errors import ConfigError


def flatten_valid(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and float targets of the valid pixels, both ``(N,)``.

    Args:
        logits: ``(B, 1, H, W)`` or ``(B, H, W)`` float.
        target: ``(B, H, W)`` integer {0, 1, 255}.
    """
    if logits.dim() == target.dim() + 1 and logits.shape[1] == 1:
        logits = logits.squeeze(1)
    if logits.shape != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match target {tuple(target.shape)}; "
            "expected (B, 1, H, W) logits and a (B, H, W) target"
        )
    valid = target != IGNORE_INDEX
    return logits[valid], target[valid].to(logits.dtype)


class SegmentationLoss(nn.Module):
    """Base class: subclasses implement :meth:`pixel_loss` on the valid pixels only."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``logits (B,1,H,W)`` against ``target (B,H,W)`` {0,1,255}."""
        x, y = flatten_valid(logits, target)
        if x.numel() == 0:
            return logits.sum() * 0.0
        return self.pixel_loss(x, y)

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of valid-pixel ``logits (N,)`` against float ``target (N,)`` in {0, 1}."""
        raise NotImplementedError


LOSSES: dict[str, type[SegmentationLoss]] = {}


def register_loss(name: str) -> Callable[[type[SegmentationLoss]], type[SegmentationLoss]]:
    """Class decorator adding a loss to :data:`LOSSES` under ``name``."""

    def decorator(cls: type[SegmentationLoss]) -> type[SegmentationLoss]:
        LOSSES[name] = cls
        return cls

    return decorator


def list_losses() -> list[str]:
    """Registered loss names."""
    return list(LOSSES)


@register_loss("bce")
class BCELoss(SegmentationLoss):
    """Per-pixel binary cross-entropy, the paper's Eq. 19, mean over valid pixels."""

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target)


@register_loss("weighted_bce")
class WeightedBCELoss(SegmentationLoss):
    """BCE with landslide pixels weighted by ``pos_weight``, mean over valid pixels.

    Args:
        pos_weight: weight of the positive term; ``"auto"`` = negative/positive pixel
            ratio of the training split (``class_counts`` must then be given).
        class_counts: ``(n_positive, n_negative)`` training pixels, used by ``"auto"``.
    """

    def __init__(
        self, pos_weight: float | str = "auto", class_counts: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        if pos_weight == "auto":
            if class_counts is None:
                raise ConfigError("weighted_bce pos_weight 'auto' needs the training class counts")
            n_positive, n_negative = class_counts
            pos_weight = n_negative / max(n_positive, 1)
        if isinstance(pos_weight, str) or float(pos_weight) <= 0:
            raise ConfigError(f"weighted_bce pos_weight must be > 0 or 'auto', got {pos_weight!r}")
        self.pos_weight = float(pos_weight)

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = logits.new_tensor(self.pos_weight)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)


@register_loss("dice")
class DiceLoss(SegmentationLoss):
    """Soft Dice: ``1 − (2·Σp·y + s) / (Σp + Σy + s)`` over the batch; ``s`` = ``smooth``."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = float(smooth)

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(logits)
        intersection = (prob * target).sum()
        return 1.0 - (2.0 * intersection + self.smooth) / (prob.sum() + target.sum() + self.smooth)


@register_loss("focal")
class FocalLoss(SegmentationLoss):
    """Focal loss (Lin et al. 2017): ``−α_t (1 − p_t)^γ log p_t``, mean over valid pixels.

    Args:
        alpha: weight of landslide pixels (background gets ``1 − alpha``); None = no weighting.
        gamma: focusing exponent; 0 gives (α-weighted) BCE.
    """

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"focal alpha must lie in [0, 1] or be null, got {alpha}")
        self.alpha = alpha
        self.gamma = float(gamma)

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = torch.exp(-bce)  # probability given to the true class
        loss = (1.0 - p_t) ** self.gamma * bce
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1.0 - self.alpha) * (1.0 - target))
        return loss.mean()


@register_loss("tversky")
class TverskyLoss(SegmentationLoss):
    """Tversky loss: ``1 − (TP + s) / (TP + α·FP + β·FN + s)`` with soft counts.

    ``alpha = beta = 0.5`` is the Dice loss; ``beta > alpha`` penalises missed landslides more.
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.beta, self.smooth = float(alpha), float(beta), float(smooth)

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(logits)
        tp = (prob * target).sum()
        fp = (prob * (1.0 - target)).sum()
        fn = ((1.0 - prob) * target).sum()
        return 1.0 - (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)


def lovasz_grad(sorted_target: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Berman 2018).

    Args:
        sorted_target: ``(N,)`` float {0, 1}, ordered by decreasing error.
    """
    positives = sorted_target.sum()
    intersection = positives - sorted_target.cumsum(0)
    union = positives + (1.0 - sorted_target).cumsum(0)
    jaccard = 1.0 - intersection / union
    if sorted_target.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


@register_loss("lovasz")
class LovaszHingeLoss(SegmentationLoss):
    """Lovász hinge (Berman et al., CVPR 2018): a convex surrogate of ``1 − IoU`` over the batch."""

    def pixel_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        signs = 2.0 * target - 1.0
        errors = 1.0 - logits * signs
        errors_sorted, order = torch.sort(errors, descending=True)
        grad = lovasz_grad(target[order])
        return torch.dot(F.relu(errors_sorted), grad)


class CombinedLoss(nn.Module):
    """Weighted sum of losses: ``Σ weight_i · loss_i(logits, target)``.

    Args:
        terms: ``(name, weight, loss)`` triples; names are for logging.
    """

    def __init__(self, terms: Sequence[tuple[str, float, SegmentationLoss]]) -> None:
        super().__init__()
        if not terms:
            raise ConfigError("a loss needs at least one term")
        self.names = [name for name, _, _ in terms]
        self.weights = [float(weight) for _, weight, _ in terms]
        self.losses = nn.ModuleList([loss for _, _, loss in terms])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar weighted sum over the terms."""
        total = logits.new_zeros(())
        for weight, loss in zip(self.weights, self.losses, strict=True):
            total = total + weight * loss(logits, target)
        return total


def build_loss(
    terms: Sequence[Mapping[str, Any] | Any], class_counts: tuple[int, int] | None = None
) -> CombinedLoss:
    """:class:`CombinedLoss` from config terms (``{name, weight, options}`` or ``LossTerm``).

    Args:
        terms: the config's ``loss`` list.
        class_counts: ``(n_positive, n_negative)`` training pixels, for ``pos_weight: auto``.

    Raises:
        ConfigError: unknown loss name or option.
    """
    built = []
    for i, term in enumerate(terms):
        raw = dict(term) if isinstance(term, Mapping) else vars(term)
        name, weight, options = raw.get("name"), raw.get("weight", 1.0), dict(raw.get("options") or {})
        if name not in LOSSES:
            raise ConfigError(f"loss[{i}]: unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
        cls = LOSSES[name]
        if cls is WeightedBCELoss:
            options.setdefault("class_counts", class_counts)
        try:
            loss = cls(**options)
        except TypeError as exc:
            raise ConfigError(f"loss[{i}] {name!r}: bad options {options} ({exc})") from None
        built.append((str(name), float(weight), loss))
    return CombinedLoss(built)


def needs_class_counts(terms: Sequence[Mapping[str, Any] | Any]) -> bool:
    """Whether any term is ``weighted_bce`` with ``pos_weight: auto`` (the default)."""
    for term in terms:
        raw = dict(term) if isinstance(term, Mapping) else vars(term)
        options = raw.get("options") or {}
        if raw.get("name") == "weighted_bce" and options.get("pos_weight", "auto") == "auto":
            return True
    return False
