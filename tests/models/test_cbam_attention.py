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


# ----------------------------------------------------------- the fused kernel (native/cbam.cpp)
@pytest.fixture
def fused_kernel():
    """The compiled kernel; tests using it skip where no C++ compiler builds it."""
    from slidemap.models.native import cbam as native_cbam
    from slidemap.models.native import status

    if native_cbam.library() is None:
        pytest.skip(f"fused CBAM kernel unavailable: {status('cbam').detail}")
    return native_cbam


def _fused_and_reference(channels: int, reduction: int, kernel: int) -> tuple[CBAM, CBAM]:
    module = _random_cbam(channels, reduction, kernel)
    reference = CBAM(channels, reduction=reduction, spatial_kernel=kernel)
    reference.load_state_dict(module.state_dict())
    reference.fused = False
    return module, reference


@pytest.mark.parametrize(("channels", "batch", "height", "width", "kernel", "threads"), [
    (16, 2, 33, 37, 7, 1),   # AVX-512 paths (C a multiple of 16), tails of 16 and 64 pixels
    (32, 3, 20, 70, 5, 2),   # one image per thread
    (16, 1, 21, 130, 7, 3),  # fewer images than threads: row chunks with halos
    (12, 3, 9, 11, 3, 2),    # portable loops (C not a multiple of 16)
])
def test_fused_cbam_forward_and_backward_equal_framework_ops(
    fused_kernel, channels: int, batch: int, height: int, width: int, kernel: int, threads: int
) -> None:
    module, reference = _fused_and_reference(channels, 4, kernel)
    torch.manual_seed(5)
    x = torch.randn(batch, channels, height, width).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn_like(x)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        inputs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
        with capture_attention(module) as maps:
            fused_out = module(inputs[0])
        with capture_attention(reference) as ref_maps:
            ref_out = reference(inputs[1])
        (fused_out * grad_out).sum().backward()
        (ref_out * grad_out).sum().backward()
        with torch.inference_mode():
            inference_out = module(x)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(fused_out, ref_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(inference_out, ref_out.detach(), rtol=0, atol=1e-5)
    assert fused_out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(maps[""].channel, ref_maps[""].channel, rtol=0, atol=1e-6)
    torch.testing.assert_close(maps[""].spatial, ref_maps[""].spatial, rtol=0, atol=1e-6)
    torch.testing.assert_close(inputs[0].grad, inputs[1].grad, rtol=1e-4, atol=1e-5)
    for (name, fused_p), ref_p in zip(module.named_parameters(), reference.parameters(), strict=True):
        scale = float(ref_p.grad.abs().max())
        torch.testing.assert_close(fused_p.grad, ref_p.grad, rtol=0, atol=1e-4 * scale, msg=name)


def test_fused_cbam_within_1e4_of_float64_equations(fused_kernel) -> None:
    module = _random_cbam(32)
    x = torch.randn(2, 32, 19, 23).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = module(x)
    torch.testing.assert_close(out.double(), _reference_cbam(module, x)[0], rtol=0, atol=1e-4)


def test_fused_cbam_bfloat16_close_to_float32(fused_kernel) -> None:
    module, reference = _fused_and_reference(16, 4, 7)
    x = torch.randn(2, 16, 24, 40).contiguous(memory_format=torch.channels_last)
    low = x.bfloat16().requires_grad_()
    high = low.detach().float().requires_grad_()
    out_low, out_high = module(low), reference(high)
    assert out_low.dtype == torch.bfloat16
    grad_out = torch.randn_like(out_high)
    (out_low.float() * grad_out).sum().backward()
    (out_high * grad_out).sum().backward()
    # bfloat16 keeps 8 significant bits: relative errors of a few 1e-3
    low_out, high_out = out_low.detach().float(), out_high.detach()
    assert float((low_out - high_out).abs().max() / high_out.abs().max()) < 1e-2
    assert float((low.grad.float() - high.grad).abs().max() / high.grad.abs().max()) < 2e-2
    weight_grad = reference.spatial.conv.weight.grad
    assert float((module.spatial.conv.weight.grad - weight_grad).abs().max() / weight_grad.abs().max()) < 2e-2


def test_native_kernels_fall_back_without_compiler_or_when_switched_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from slidemap.models import native

    monkeypatch.setenv("SLIDEMAP_CACHE_DIR", str(tmp_path))
    try:
        monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
        native.load_library.cache_clear()
        assert native.load_library("cbam") is None
        assert native.status("cbam").state == "unavailable"
        monkeypatch.setenv("SLIDEMAP_NATIVE", "0")
        native.load_library.cache_clear()
        assert native.load_library("cbam") is None
        assert native.status("cbam").state == "disabled"
        assert not list(tmp_path.iterdir())  # nothing built, nothing left behind
    finally:
        native.load_library.cache_clear()
