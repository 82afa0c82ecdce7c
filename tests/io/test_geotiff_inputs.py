"""GeoTIFF inputs: validation errors name the file; band mapping; the DEM warped onto the image grid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds

from slidemap.bands import BandSet
from slidemap.errors import InputError
from slidemap.inference.scene import SceneReader, SceneSpec
from slidemap.io.geotiff import dem_on_image_grid, inspect_raster, read_window
from slidemap.io.scene_formats import open_multiband_raster
from slidemap.io.scene_source import map_bands, parse_band_mapping

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
import mapping_helpers  # noqa: E402
from mapping_helpers import ORIGIN, TINY_BANDS, write_raster  # noqa: E402

make_scene = mapping_helpers.make_scene  # the fixture, shared with tests/inference

BAND_SET = BandSet.from_dict(TINY_BANDS)


def direct_warp(dem: Path, image: Path) -> np.ndarray:
    """Reference: the whole DEM reprojected onto the image grid in one call."""
    with rasterio.open(dem) as src, rasterio.open(image) as ref:
        out = np.full((ref.height, ref.width), np.nan, dtype=np.float32)
        reproject(src.read(1), out, src_transform=src.transform, src_crs=src.crs, src_nodata=src.nodata,
                  dst_transform=ref.transform, dst_crs=ref.crs, dst_nodata=np.nan,
                  resampling=Resampling.bilinear)
    return out


@pytest.mark.parametrize("dem_crs", ["EPSG:32633", "EPSG:4326"])
def test_dem_at_30m_is_warped_onto_the_image_grid_like_a_direct_warp(make_scene, tmp_path, dem_crs) -> None:
    paths = make_scene(size=90)
    dem_path = paths["dem"]
    if dem_crs != "EPSG:32633":  # the same DEM, delivered in geographic coordinates
        with rasterio.open(dem_path) as src:
            left, bottom, right, top = transform_bounds(src.crs, dem_crs, *src.bounds)
            values = src.read(1)
        res = (right - left) / values.shape[1]
        dem_path = write_raster(tmp_path / "dem_geo.tif", values, crs=dem_crs, res=res,
                                origin=(left, top), nodata=-9999.0)
    image = inspect_raster(paths["image"])
    expected = direct_warp(dem_path, paths["image"])
    with dem_on_image_grid(dem_path, image) as vrt:
        window = rasterio.windows.Window(17, 23, 41, 37)
        values, valid = read_window(vrt, [1], window)
    got = values[0]
    ref = expected[23:60, 17:58]
    assert valid.all() and np.isfinite(ref).all()
    np.testing.assert_allclose(got, ref, atol=1e-3)


def test_dem_outside_the_image_is_refused(make_scene, tmp_path) -> None:
    paths = make_scene(size=32)
    far = write_raster(tmp_path / "far.tif", np.ones((10, 10), np.float32), res=30.0,
                       origin=(ORIGIN[0] + 50_000, ORIGIN[1]))
    with pytest.raises(InputError, match="does not overlap") as err:
        SceneReader(SceneSpec(paths["image"], far), BAND_SET).__enter__()
    assert "far.tif" in str(err.value)


def test_raster_problems_are_input_errors_naming_the_file(tmp_path) -> None:
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff")
    with pytest.raises(InputError, match="garbage.tif"):
        inspect_raster(garbage)
    no_crs = tmp_path / "nocrs.tif"
    with rasterio.open(no_crs, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
                       transform=rasterio.transform.from_origin(0, 4, 1, 1)) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(InputError, match="nocrs.tif: raster has no coordinate reference system"):
        inspect_raster(no_crs)
    with pytest.raises(InputError, match="does not exist"):
        inspect_raster(tmp_path / "missing.tif")


def _numbers(choices) -> tuple:
    return tuple((kind, None if src is None else src.index) for kind, src in choices)


def test_bands_map_by_description_by_explicit_mapping_or_fail_clearly(tmp_path) -> None:
    described = open_multiband_raster(write_raster(tmp_path / "d.tif", np.ones((2, 4, 4), np.uint16),
                                                   descriptions=("B08", "B04")))
    assert _numbers(map_bands(BAND_SET, described, have_dem=True)) == (
        ("image", 2), ("image", 1), ("slope", None), ("dem", None))
    plain = open_multiband_raster(write_raster(tmp_path / "p.tif", np.ones((3, 4, 4), np.uint16)))
    mapping = parse_band_mapping("B4=3, nir=1")
    assert _numbers(map_bands(BAND_SET, plain, mapping, have_dem=True))[:2] == (("image", 3), ("image", 1))
    with pytest.raises(InputError, match=r"p.tif: cannot find band\(s\) B4, B8; the model needs B4, B8, "
                                         r"slope, DEM.*--bands"):
        map_bands(BAND_SET, plain, have_dem=True)
    with pytest.raises(InputError, match="DEM.*--dem"):
        map_bands(BAND_SET, described, have_dem=False)
    with pytest.raises(InputError, match="bands 1..3"):
        map_bands(BAND_SET, plain, {"B4": 7}, have_dem=True)
    with pytest.raises(InputError, match="NAME=NUMBER"):
        parse_band_mapping("B4:3")


def test_reader_converts_sentinel2_digital_numbers_to_stored_units(make_scene) -> None:
    paths = make_scene(size=40)
    with rasterio.open(paths["image"]) as src:
        red_dn = src.read(1).astype(np.float32)
    with SceneReader(SceneSpec(paths["image"], paths["dem"]), BAND_SET) as reader:
        bands, valid = reader.read(rasterio.windows.Window(0, 0, 40, 40))
        slope, _ = reader.slope_deg(rasterio.windows.Window(0, 0, 40, 40))
    assert valid.all()
    np.testing.assert_allclose(bands[0], red_dn / 10000 / 0.08, rtol=1e-6)  # stored = reflectance / 0.08
    np.testing.assert_allclose(bands[2], slope / 20.0, rtol=1e-6)          # slope band in stored units
    assert 700 / 1000 < np.nanmean(bands[3]) < 1300 / 1000                 # DEM metres / 1000


def test_mapping_caps_gdal_block_cache_unless_the_environment_sets_it(monkeypatch) -> None:
    from rasterio.env import get_gdal_config

    from slidemap.io.geotiff import MAPPING_GDAL_CACHE_MB, bounded_gdal_cache

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = get_gdal_config("GDAL_CACHEMAX")
    with bounded_gdal_cache():
        assert get_gdal_config("GDAL_CACHEMAX") == MAPPING_GDAL_CACHE_MB * 2**20
    assert get_gdal_config("GDAL_CACHEMAX") == before  # restored afterwards
    monkeypatch.setenv("GDAL_CACHEMAX", "512")  # the user's choice is left alone
    with bounded_gdal_cache():
        assert get_gdal_config("GDAL_CACHEMAX") == before
