"""Gradients reach every parameter, and every network overfits one tiny batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slidemap.models import build_model

NAMES = ["unet", "unet_cbam", "segnet", "dpfcn"]


def _learnable_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 4, 32, 32) noise and a mask = smoothed channel 0 above its median."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, 32, 32, generator=generator)
    smooth = F.avg_pool2d(x[:, :1], kernel_size=5, stride=1, padding=2)
    mask = (smooth > smooth.median()).float()
    return x, mask


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    # reduction 2 keeps CBAM's hidden layer wider than one unit, which could be dead (ReLU)
    options = {"reduction": 2} if name == "unet_cbam" else {}
    model = build_model(name, 4, base_channels=4, depth=2, **options)
    x, mask = _learnable_batch()
    F.binary_cross_entropy_with_logits(model(x), mask).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_model_overfits_one_batch(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 4, base_channels=8, depth=2)
    x, mask = _learnable_batch()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = last = None
    for _ in range(150):
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x), mask)
        loss.backward()
        optimiser.step()
        first = first if first is not None else loss.item()
        last = loss.item()
        if last <= 0.1 * first:
            break
    assert last <= 0.1 * first, f"{name}: loss {first:.3f} -> {last:.3f}"
