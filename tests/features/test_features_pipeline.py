"""InputPipeline and the feature registry: channels, order, round trip, and band-set checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slidemap.bands import get_band_set
from slidemap.errors import BandSetError, ConfigError, InputError
from slidemap.features import FEATURES, PAPER_FEATURES, InputPipeline, get_feature, list_features
from slidemap.features.terrain import RELIEF_WINDOW_PX


def l4s_bands(seed: int = 0, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bands = rng.uniform(0.3, 2.0, (14, size, size)).astype(np.float32)
    metres_per_unit = get_band_set("l4s14").band("dem").physical_per_unit
    dem_m = 3000.0 + 10.0 * np.arange(size)[None, :]  # rising 10 m per 10 m pixel
    bands[13] = dem_m / metres_per_unit
    return bands


def test_registry_names_the_paper_and_rgb_features() -> None:
    assert list(PAPER_FEATURES) == ["ndvi", "slope", "elevation", "ndmi", "gndvi", "brightness", "bsi"]
    assert set(list_features()) == set(FEATURES) >= {*PAPER_FEATURES, "vari", "exg", "relief", "hillshade"}
    assert get_feature(" NDVI ").name == "ndvi"
    assert set(list_features(get_band_set("rgbd"))) == {"slope", "elevation", "vari", "exg", "relief", "hillshade"}
    assert get_feature("slope").halo_px == 1 and get_feature("relief").halo_px == RELIEF_WINDOW_PX // 2
    with pytest.raises(ConfigError, match="unknown feature 'ndwi'; known features: ndvi"):
        get_feature("ndwi")


def test_pipeline_stacks_bands_then_features_in_order() -> None:
    pipeline = InputPipeline("l4s14", ["bsi", "ndvi", "slope", "elevation"])
    bands = l4s_bands()
    out = pipeline(bands)
    assert pipeline.in_channels == 18 and out.shape == (18, 16, 16) and out.dtype == np.float32
    band_set = pipeline.band_set
    assert pipeline.channel_names == [*band_set.names, "bsi", "ndvi", "slope_feature", "elevation"]
    np.testing.assert_array_equal(out[:14], bands)
    for offset, name in enumerate(["bsi", "ndvi", "slope", "elevation"], start=14):
        np.testing.assert_array_equal(out[offset], get_feature(name).compute(bands, band_set, 10.0))
    np.testing.assert_allclose(out[16], 45.0, atol=1e-3)  # 10 m rise per 10 m pixel (pixel size from the band set)
    np.testing.assert_allclose(out[17], 3000.0 + 10.0 * np.arange(16)[None, :].repeat(16, 0), rtol=1e-6)
    assert pipeline.halo_px == 1 and InputPipeline("l4s14").halo_px == 0


def test_pixel_size_changes_the_slope() -> None:
    bands = l4s_bands()
    slope_20m = InputPipeline("l4s14", ["slope"], pixel_size_m=20.0)(bands)[14]
    np.testing.assert_allclose(slope_20m, np.degrees(np.arctan(0.5)), atol=1e-3)


def test_batches_are_processed_item_by_item() -> None:
    pipeline = InputPipeline("l4s14", ["ndvi"])
    batch = np.stack([l4s_bands(0), l4s_bands(1)])
    out = pipeline(batch)
    assert out.shape == (2, 15, 16, 16)
    np.testing.assert_array_equal(out[1], pipeline(batch[1]))


def test_to_dict_round_trips_through_json() -> None:
    pipeline = InputPipeline("rgbd", ["vari", "hillshade"], pixel_size_m=0.5, elevation="relative")
    data = json.loads(json.dumps(pipeline.to_dict()))
    rebuilt = InputPipeline.from_dict(data)
    assert rebuilt == pipeline and rebuilt.channel_names == pipeline.channel_names
    assert rebuilt.pixel_size_m == 0.5 and rebuilt.elevation == "relative"
    rgbd = np.random.default_rng(0).uniform(0, 255, (4, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt(rgbd), pipeline(rgbd))


def test_rgbd_with_ndvi_raises_band_set_error_naming_both() -> None:
    with pytest.raises(BandSetError, match="feature 'ndvi' needs a nir band, which band set 'rgbd'"):
        InputPipeline("rgbd", ["slope", "ndvi"])
    with pytest.raises(BandSetError, match="'bsi' needs a swir1 band and a nir band, which"):
        InputPipeline("rgbd", ["bsi"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": ["ndvi", "ndvi"]}, "listed more than once"),
        ({"features": ["nope"]}, "unknown feature"),
        ({"elevation": "height"}, "elevation must be one of absolute, relative"),
        ({"pixel_size_m": 0}, "pixel_size_m must be a positive"),
        ({"pixel_size_m": "ten"}, "pixel_size_m must be a positive"),
    ],
)
def test_bad_pipeline_options_raise_config_error(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        InputPipeline("l4s14", **kwargs)


@pytest.mark.parametrize(
    "data", [{"features": ["ndvi"]}, {"band_set": "l4s14", "extra": 1}, {"band_set": "l4s14", "features": "ndvi"}]
)
def test_malformed_pipeline_dict_raises_config_error(data) -> None:
    with pytest.raises(ConfigError):
        InputPipeline.from_dict(data)


def test_relative_elevation_removes_the_patch_median_from_dem_and_elevation() -> None:
    bands = l4s_bands()
    absolute = InputPipeline("l4s14", ["elevation", "slope"])(bands)
    relative = InputPipeline("l4s14", ["elevation", "slope"], elevation="relative")(bands)
    assert np.median(relative[13]) == pytest.approx(0.0, abs=1e-6)
    assert np.median(relative[14]) == pytest.approx(0.0, abs=1e-3)
    np.testing.assert_allclose(relative[14], absolute[14] - np.median(absolute[14]), atol=1e-2)
    np.testing.assert_allclose(relative[15], absolute[15], atol=1e-3)  # slope does not change
    np.testing.assert_array_equal(relative[:13], absolute[:13])


def test_non_finite_input_never_leaves_the_pipeline() -> None:
    bands = l4s_bands()
    bands[:, 2, 3] = np.nan
    bands[7, 5, 5] = np.inf
    bands[3, 0, 0] = -np.inf
    out = InputPipeline("l4s14", list(PAPER_FEATURES))(bands.astype(np.float64))
    assert np.isfinite(out).all() and out.dtype == np.float32
    assert out[0, 2, 3] == 0.0


def test_wrong_channel_count_raises_input_error() -> None:
    with pytest.raises(InputError, match=r"band set 'l4s14' expects \(14, H, W\)"):
        InputPipeline("l4s14")(np.zeros((4, 8, 8), np.float32))
