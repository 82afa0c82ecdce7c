"""Model size and cost: parameter count and forward FLOPs (used by ``slidemap models`` and
the speed benchmark)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ModelProfile:
    """``parameters``: trainable parameter count; ``gflops``: forward FLOPs (1e9, a
    multiply-add counts 2) of one ``(1, C, size, size)`` patch, as counted by
    :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products;
    element-wise work such as norms, activations and CBAM's gating is not counted)."""

    parameters: int
    gflops: float
    size: int


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, in_channels: int, size: int = 128) -> int:
    """Forward FLOPs of ``model`` on one ``(1, in_channels, size, size)`` zero patch (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_channels, size, size))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def profile_model(model: nn.Module, in_channels: int, size: int = 128) -> ModelProfile:
    """Parameters and GFLOPs of ``model`` for one ``size x size`` patch."""
    return ModelProfile(count_parameters(model), count_flops(model, in_channels, size) / 1e9, size)
