"""Features that need a band the rgbd set lacks are refused at config load, in one line."""

from __future__ import annotations

import pytest

from slidemap.cli import main
from slidemap.errors import ConfigError
from slidemap.workflows.configs import load_experiment

MISSING_BAND = {"ndvi": "nir", "ndmi": "swir1", "gndvi": "nir", "bsi": "swir1", "brightness": "nir"}


@pytest.mark.parametrize("feature", sorted(MISSING_BAND))
def test_rgbd_config_refuses_a_feature_needing_a_missing_band(feature: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_experiment("configs/rgbd/unet.yaml", [f"data.features=[exg, {feature}]"])
    message = str(error.value)
    assert "\n" not in message
    assert f"'{feature}'" in message and MISSING_BAND[feature] in message and "'rgbd'" in message
    assert "unet.yaml" in message


def test_rgbd_train_with_ndvi_exits_nonzero_with_one_line_before_reading_data(
    capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["train", "--config", "configs/rgbd/unet.yaml", "--set",
                   "data.features=[ndvi]", "--set", "data.train_path=/nonexistent/area_A"])
    assert status != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ndvi" in err[0] and "nir" in err[0] and "/nonexistent" not in err[0]


def test_rgbd_shipped_configs_train_on_every_area_with_supported_features_only() -> None:
    for name in ("unet", "unet_cbam"):
        config = load_experiment(f"configs/rgbd/{name}.yaml")
        assert config.data.band_set == "rgbd" and config.data.elevation == "relative"
        # deployable: trained on every labelled area; checkpoint and threshold chosen on
        # held-out blocks of those areas, never on another area
        assert [p.rsplit("/", 1)[-1] for p in config.data.train_path] == ["area_A", "area_B"]
        assert config.data.val_path is None and config.data.holdout.fraction == 0.2
        assert config.threshold == "best_f1" and config.trainer.patience == 0
