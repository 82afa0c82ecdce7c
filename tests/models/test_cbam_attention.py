"""CBAM (Eq. 5-11) against a direct float64 computation written with plain tensor ops."""

from __future__ import annotations

import pytest
import torch

from slidemap.models import CBAM, build_model, capture_attention
from slidemap.models import cbam as cbam_module


@torch.no_grad()
def _reference_cbam(
    module: CBAM, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 5-11 written out in float64 from ``module``'s weights: (output, Mc, Ms)."""
    x = x.double()
    w0 = module.channel.mlp.fc0.weight.double()[:, :, 0, 0]  # (C/r, C)
    b0 = module.channel.mlp.fc0.bias.double()
    w1 = module.channel.mlp.fc1.weight.double()[:, :, 0, 0]  # (C, C/r)
    b1 = module.channel.mlp.fc1.bias.double()

    def shared_mlp(v: torch.Tensor) -> torch.Tensor:  # canonical W1 ReLU(W0 v), both terms
        return torch.relu(v @ w0.T + b0) @ w1.T + b1

    f_avg = x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])  # Eq. 5
    f_max = x.flatten(2).max(dim=2).values
    mc = torch.sigmoid(shared_mlp(f_avg) + shared_mlp(f_max))  # Eq. 6 (canonical)
    refined = x * mc[:, :, None, None]  # Eq. 7

    s_avg = refined.sum(dim=1) / refined.shape[1]  # Eq. 8
    s_max = refined.max(dim=1).values
    kernel = module.spatial.conv.weight.double()[0]  # (2, k, k)
    k = kernel.shape[-1]
    half = k // 2
    height, width = x.shape[2:]
    padded = torch.zeros(x.shape[0], 2, height + 2 * half, width + 2 * half, dtype=torch.float64)
    padded[:, 0, half : half + height, half : half + width] = s_avg
    padded[:, 1, half : half + height, half : half + width] = s_max
    logits = torch.full((x.shape[0], height, width), float(module.spatial.conv.bias.double()))
    logits = logits.double()
    for i in range(k):  # Eq. 9 as an explicit sum of shifted, weighted maps
        for j in range(k):
            for stat in range(2):
                logits += kernel[stat, i, j] * padded[:, stat, i : i + height, j : j + width]
    ms = torch.sigmoid(logits)[:, None]
    return refined * ms, mc[:, :, None, None], ms  # Eq. 10-11


def _random_cbam(channels: int = 12, reduction: int = 4, kernel: int = 7) -> CBAM:
    torch.manual_seed(3)
    module = CBAM(channels, reduction=reduction, spatial_kernel=kernel)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.3)
    return module


@pytest.mark.parametrize("kernel", [7, 3])
def test_cbam_matches_float64_equations(kernel: int) -> None:
    module = _random_cbam(kernel=kernel).double()
    x = torch.randn(3, 12, 9, 11, dtype=torch.float64)
    expected, mc, ms = _reference_cbam(module, x)
    with capture_attention(module) as maps:
        out = module(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(maps[""].channel, mc, rtol=0, atol=1e-10)
    torch.testing.assert_close(maps[""].spatial, ms, rtol=0, atol=1e-10)


@pytest.mark.parametrize("channels", [12, 40])  # channels_last: max tree below 32, plain max above
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_cbam_float32_fast_path_within_1e4_of_reference(channels: int, channels_last: bool,
                                                        grad: bool) -> None:
    module = _random_cbam(channels)
    x = torch.randn(4, channels, 16, 13)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        module = module.to(memory_format=torch.channels_last)
    expected = _reference_cbam(module, x)[0]
    with torch.set_grad_enabled(grad):
        out = module(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-4)


def test_cbam_export_path_equals_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _random_cbam()
    x = torch.randn(2, 12, 10, 10)
    with torch.inference_mode():
        fast = module(x)
        monkeypatch.setattr(cbam_module, "exporting", lambda: True)
        plain = module(x)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)


def test_attention_maps_are_strictly_inside_unit_interval() -> None:
    torch.manual_seed(0)
    model = build_model("unet_cbam", 4, base_channels=8, depth=2, reduction=2).eval()
    x = torch.randn(2, 4, 24, 20)
    with torch.inference_mode():
        plain = model(x)
        maps = model.attention_maps(x)
        again = model(x)
    # 3 encoder blocks (bottleneck included), 2 decoder blocks, 2 skips
    assert len(maps) == 7
    assert {"encoder.2.attention", "decoder.0.skip_attention", "decoder.1.attention"} <= set(maps)
    for name, m in maps.items():
        channels = m.channel.shape[1]
        assert m.channel.shape == (2, channels, 1, 1), name
        assert m.spatial.shape[:2] == (2, 1), name
        for a in (m.channel, m.spatial):
            assert bool((a > 0).all() and (a < 1).all()), name
    torch.testing.assert_close(plain, again)
    assert all(not module.keep_maps for module in model.modules() if isinstance(module, CBAM))


def test_cbam_rejects_bad_options() -> None:
    from slidemap.errors import ConfigError

    with pytest.raises(ConfigError, match="reduction"):
        CBAM(8, reduction=0)
    with pytest.raises(ConfigError, match="spatial_kernel"):
        CBAM(8, spatial_kernel=4)
    with pytest.raises(ConfigError, match="gate_bias"):
        CBAM(8, gate_bias="open")


@torch.no_grad()
def test_gate_bias_starts_both_gates_open_and_none_keeps_default_init() -> None:
    torch.manual_seed(0)
    module = CBAM(16, reduction=4, gate_bias=2.0)
    # With the weights zeroed only the biases speak: both maps are exactly sigmoid(2).
    for conv in (module.channel.mlp.fc0, module.channel.mlp.fc1, module.spatial.conv):
        conv.weight.zero_()
    with capture_attention(module) as maps:
        module(torch.randn(2, 16, 12, 12))
    expected = torch.sigmoid(torch.tensor(2.0))
    torch.testing.assert_close(maps[""].channel, torch.full((2, 16, 1, 1), float(expected)))
    torch.testing.assert_close(maps[""].spatial, torch.full((2, 1, 12, 12), float(expected)))
    torch.manual_seed(0)
    default = CBAM(16, reduction=4, gate_bias=None)  # PyTorch's own (random) bias init
    assert default.spatial.conv.bias.abs().item() < 1.0 and default.channel.mlp.fc1.bias.std() > 0
    # the option reaches every CBAM of a UNet-CBAM
    model = build_model("unet_cbam", 3, base_channels=8, depth=2, gate_bias=1.5)
    biases = [m.spatial.conv.bias.item() for m in model.modules() if isinstance(m, CBAM)]
    assert len(biases) == 3 + 2 + 2 and all(b == 1.5 for b in biases)
