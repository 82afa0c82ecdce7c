"""Every network maps (B, C, H, W) of any size and channel count to logits (B, 1, H, W)."""

from __future__ import annotations

import pytest
import torch

from slidemap.errors import InputError
from slidemap.models import build_model, list_models
from slidemap.models.blocks import pad_to_multiple


@pytest.mark.parametrize("name", ["unet", "unet_cbam", "segnet", "dpfcn"])
@pytest.mark.parametrize("in_channels", [4, 14, 21])
@pytest.mark.parametrize("size", [(32, 32), (100, 77), (7, 3)])
def test_output_is_one_logit_per_pixel(name: str, in_channels: int, size: tuple[int, int]) -> None:
    model = build_model(name, in_channels, base_channels=4, depth=3).eval()
    with torch.inference_mode():
        logits = model(torch.randn(2, in_channels, *size))
    assert logits.shape == (2, 1, *size)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["unet", "unet_cbam", "segnet", "dpfcn"])
def test_default_depth_handles_patch_and_odd_sizes(name: str) -> None:
    model = build_model(name, 14, base_channels=4).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 14, 128, 128)).shape == (1, 1, 128, 128)
        assert model(torch.randn(1, 14, 100, 77)).shape == (1, 1, 100, 77)


@pytest.mark.parametrize("name", ["unet_cbam", "segnet", "dpfcn"])
def test_channels_last_gives_the_same_logits(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 5, base_channels=4, depth=2).eval()
    x = torch.randn(2, 5, 24, 20)
    with torch.inference_mode():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_wrong_channel_count_is_an_input_error() -> None:
    model = build_model("unet", 21, base_channels=4, depth=2)
    with pytest.raises(InputError, match="21"):
        model(torch.randn(1, 14, 32, 32))


def test_padding_reflects_and_falls_back_to_replicate_for_tiny_inputs() -> None:
    image = torch.arange(30.0).view(1, 1, 5, 6)
    reflected = pad_to_multiple(image, 4)
    assert reflected.shape == (1, 1, 8, 8)
    torch.testing.assert_close(reflected[0, 0, 5, :6], image[0, 0, 3])  # row 5 mirrors row 3
    torch.testing.assert_close(reflected[0, 0, 0, 6:], torch.tensor([4.0, 3.0]))
    tiny = pad_to_multiple(torch.arange(6.0).view(1, 1, 2, 3), 8)
    assert tiny.shape == (1, 1, 8, 8)
    assert tiny[0, 0, 7, 7] == 5.0  # replicated corner
    aligned = image[..., :4, :4]
    assert pad_to_multiple(aligned, 4) is aligned


def test_every_registered_model_is_covered() -> None:
    assert list_models() == ["unet", "unet_cbam", "segnet", "dpfcn"]


def test_segnet_export_path_unpools_like_max_unpool2d(monkeypatch: pytest.MonkeyPatch) -> None:
    from slidemap.models import segnet

    torch.manual_seed(0)
    model = build_model("segnet", 3, base_channels=4, depth=2).eval()
    x = torch.randn(2, 3, 20, 12)
    with torch.inference_mode():
        eager = model(x)
        monkeypatch.setattr(segnet, "exporting", lambda: True)
        exported_path = model(x)
    assert torch.equal(eager, exported_path)
