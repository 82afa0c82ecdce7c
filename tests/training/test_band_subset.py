"""``data.bands``: a model that reads part of its band set (every l4s14 band but B10 for L2A)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from slidemap.bands import get_band_set
from slidemap.config import experiment_from_dict, load_config
from slidemap.errors import BandSetError, ConfigError
from slidemap.features import InputPipeline
from slidemap.workflows.configs import check_names, load_experiment

L2A = [b for b in get_band_set("l4s14").names if b != "B10"]


def test_shipped_l2a_config_reads_every_band_but_b10() -> None:
    for path in ("paper/unet_cbam_l2a.yaml", "configs/paper/unet_cbam_l2a.yaml"):
        config = load_config(path)
        assert config.data.bands == L2A and config.model.name == "unet_cbam"
    from slidemap.training.run import build_pipeline

    pipeline = build_pipeline(config)
    assert "B10" not in pipeline.band_set.names and pipeline.in_channels == 13 + 7
    assert pipeline.band_set.name == "l4s14 without B10"
    assert load_config("paper/unet_cbam.yaml").data.bands is None  # the paper's model is unchanged


def test_unknown_band_in_data_bands_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"data": {"bands": ["B2", "B3", "B13"]}}))
    with pytest.raises(ConfigError, match=r"exp.yaml: 'data.band_set'/'data.bands'/'data.features': band set "
                                          r"'l4s14' .* has no band 'B13'"):
        load_experiment(path)


def test_feature_needing_a_band_left_out_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"feature 'ndvi' needs a nir band, which band set 'l4s14 bands B2, B3, "
                                          r"B4, DEM'"):
        check_names(experiment_from_dict({"data": {"bands": ["B2", "B3", "B4", "DEM"],
                                                   "features": ["ndvi"]}}), "<config>")
    check_names(experiment_from_dict({"data": {"bands": ["B2", "B3", "B4", "DEM"], "features": ["elevation"]}}),
                "<config>")


def test_subset_is_taken_by_name_from_full_patches_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    patch = rng.uniform(0.2, 2.0, size=(14, 16, 16)).astype(np.float32)  # a full l4s14 patch, stored units
    pipeline = InputPipeline("l4s14", ["ndvi", "slope", "bsi"], bands=L2A)
    subset_set = get_band_set("l4s14").subset(L2A)
    by_hand = InputPipeline(subset_set, ["ndvi", "slope", "bsi"])(np.delete(patch, 9, axis=0))
    np.testing.assert_array_equal(pipeline(patch), by_hand)  # 14 channels in: B10 dropped by name
    np.testing.assert_array_equal(pipeline(np.delete(patch, 9, axis=0)), by_hand)  # 13 channels in: as they are
    assert pipeline.channel_names[:13] == L2A
    again = InputPipeline.from_dict(pipeline.to_dict())
    assert again == pipeline and again.to_dict()["bands"] == L2A
    assert "bands" not in InputPipeline("l4s14", ["ndvi"]).to_dict()  # older checkpoints compare equal


def test_subset_names_may_be_aliases_but_not_repeated() -> None:
    l4s14 = get_band_set("l4s14")
    assert l4s14.subset(["red", "B08", "DEM"]).names == ["B4", "B8", "DEM"]
    with pytest.raises(BandSetError, match="listed twice"):
        l4s14.subset(["B4", "red"])
