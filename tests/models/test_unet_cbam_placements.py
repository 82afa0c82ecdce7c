"""UNet-CBAM is the UNet with CBAM placements switched on (one class, Eq. 11-13)."""

from __future__ import annotations

import pytest
import torch

from slidemap.models import CBAM, build_model

OFF = {"cbam_encoder": False, "cbam_decoder": False, "cbam_skip": False}


def test_unet_cbam_with_every_placement_off_equals_unet() -> None:
    torch.manual_seed(0)
    unet = build_model("unet", 6, base_channels=8, depth=3).eval()
    bare = build_model("unet_cbam", 6, base_channels=8, depth=3, **OFF).eval()
    unet_state, bare_state = unet.state_dict(), bare.state_dict()
    assert list(unet_state) == list(bare_state)
    assert [v.shape for v in unet_state.values()] == [v.shape for v in bare_state.values()]
    assert sum(p.numel() for p in unet.parameters()) == sum(p.numel() for p in bare.parameters())
    bare.load_state_dict(unet_state)
    x = torch.randn(2, 6, 40, 36)
    with torch.inference_mode():
        assert torch.equal(unet(x), bare(x))


@pytest.mark.parametrize(
    ("placement", "expected_names"),
    [
        ("cbam_encoder", {"encoder.0.attention", "encoder.1.attention", "encoder.2.attention"}),
        ("cbam_decoder", {"decoder.0.attention", "decoder.1.attention"}),
        ("cbam_skip", {"decoder.0.skip_attention", "decoder.1.skip_attention"}),
    ],
)
def test_each_placement_adds_cbam_exactly_there(placement: str, expected_names: set[str]) -> None:
    model = build_model("unet", 3, base_channels=4, depth=2, **{placement: True})
    cbams = {name for name, m in model.named_modules() if isinstance(m, CBAM)}
    assert cbams == expected_names


def test_unet_cbam_defaults_put_cbam_everywhere() -> None:
    model = build_model("unet_cbam", 3, base_channels=4, depth=4)
    n_cbam = sum(isinstance(m, CBAM) for m in model.modules())
    assert n_cbam == (4 + 1) + 4 + 4  # encoder incl. bottleneck, decoder, skips
    assert model.model_options["cbam_skip"] is True


def test_cbam_widths_follow_the_levels() -> None:
    model = build_model("unet_cbam", 3, base_channels=8, depth=2, reduction=4)
    assert model.encoder[2].attention.channel.mlp.fc0.weight.shape == (8, 32, 1, 1)
    assert model.decoder[1].skip_attention.channel.mlp.fc0.weight.shape == (2, 8, 1, 1)
