"""Registry: names and options in, a model out; anything unknown is a ConfigError."""

from __future__ import annotations

import pytest
import torch

from slidemap.errors import ConfigError
from slidemap.models import build_model, list_models, model_info, profile_model


def test_list_models_names_the_four_networks() -> None:
    assert list_models() == ["unet", "unet_cbam", "segnet", "dpfcn"]


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="unet, unet_cbam, segnet, dpfcn"):
        build_model("resnet", 3)


def test_unknown_option_lists_the_valid_options() -> None:
    with pytest.raises(ConfigError, match="widht") as excinfo:
        build_model("unet", 3, widht=8)
    assert "base_channels" in str(excinfo.value)
    with pytest.raises(ConfigError, match="cbam_skip"):
        build_model("segnet", 3, cbam_skip=True)


@pytest.mark.parametrize(
    "options",
    [
        {"norm": "layer"},
        {"depth": 0},
        {"base_channels": 0},
        {"dropout": 1.0},
        {"reduction": 0},
        {"spatial_kernel": 6},
    ],
)
def test_bad_option_values_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError):
        build_model("unet_cbam", 3, **options)


def test_bad_dpfcn_pyramid_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pool_bins"):
        build_model("dpfcn", 3, pool_bins=[])


def test_model_info_exposes_defaults_per_name() -> None:
    assert model_info("unet").options["cbam_encoder"] is False
    assert model_info("unet_cbam").options["cbam_encoder"] is True
    assert model_info("unet_cbam").factory is model_info("unet").factory
    assert set(model_info("segnet").options) == {"base_channels", "depth", "norm", "dropout"}
    assert model_info("dpfcn").description


@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_every_norm_builds_and_runs(norm: str) -> None:
    model = build_model("unet_cbam", 3, base_channels=4, depth=2, norm=norm, dropout=0.1)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 1, 16, 16)
    # the option is honoured: the blocks hold that normalisation and no other, and dropout
    norms = {"batch": torch.nn.BatchNorm2d, "group": torch.nn.GroupNorm,
             "instance": torch.nn.InstanceNorm2d}
    found = {name for name, kind in norms.items()
             if any(isinstance(m, kind) for m in model.modules())}
    assert found == ({norm} if norm in norms else set())
    assert any(isinstance(m, torch.nn.Dropout2d) and m.p == 0.1 for m in model.modules())


def test_built_model_records_resolved_options() -> None:
    model = build_model("dpfcn", 7, base_channels=4)
    assert model.model_name == "dpfcn"
    assert model.model_options["depth"] == 3
    assert model.model_options["base_channels"] == 4
    assert model.model_options["pool_bins"] == [1, 2, 4]  # plain data for checkpoints


def test_profile_counts_parameters_and_flops() -> None:
    model = build_model("unet", 4, base_channels=4, depth=2)
    profile = profile_model(model, 4, size=32)
    assert profile.parameters == sum(p.numel() for p in model.parameters())
    first_conv = 2 * 4 * 4 * 9 * 32 * 32  # 2 FLOPs per multiply-add
    assert profile.gflops * 1e9 > first_conv
    assert model.training  # restored


def test_cli_prints_the_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    from slidemap.cli import main

    assert main(["models", "--width", "4", "--in-channels", "5"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out
    assert "GFLOPs" in out
