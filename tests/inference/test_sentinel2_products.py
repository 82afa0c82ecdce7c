"""Sentinel-2 products as downloaded map exactly like the multi-band GeoTIFF of the same scene.

One synthetic scene (``sentinel2_helpers.s2_scene``) is written as a multi-band GeoTIFF and,
from the same digital numbers, as an L2A ``.SAFE`` product (baseline 05.09: files hold
``DN + 1000`` and the metadata declares ``BOA_ADD_OFFSET = -1000``), its ``MTD_MSIL2A.xml``,
the zipped product, a folder of per-band COGs and JP2s at 10/20/60 m, and a STAC item over
the COGs. Every one must give the GeoTIFF's ``probability.tif`` within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window
from sentinel2_helpers import make_engine, read_band, write_multiband

from slidemap.bands import SENTINEL2_ADD_OFFSET_DN
from slidemap.data.synthetic.sentinel2 import (
    write_band_folder,
    write_safe,
    write_stac_item,
    zip_product,
)
from slidemap.inference.mapping import (
    MASK_NODATA,
    MASK_NOT_ASSESSABLE,
    MappingOptions,
    predict_scene,
)
from slidemap.inference.scene import SceneReader, SceneSpec

OPTIONS = MappingOptions(window=128, overlap=32)


def map_scene(engine, image, dem, out: Path, **spec) -> tuple[np.ndarray, dict]:
    summary = predict_scene(engine, SceneSpec(image, dem, **spec), out, OPTIONS)
    return read_band(out / "probability.tif"), summary


@pytest.fixture(scope="module")
def reference(s2_scene, l2a_engine, tmp_path_factory) -> tuple[np.ndarray, dict]:
    """The multi-band GeoTIFF path: today's way in."""
    return map_scene(l2a_engine, s2_scene["image"], s2_scene["dem"], tmp_path_factory.mktemp("ref"))


def _safe(root: Path, scene) -> Path:
    return write_safe(root, scene, level="L2A", baseline="05.09")


PRODUCTS = {
    "safe folder": lambda root, scene: _safe(root, scene),
    "MTD_MSIL2A.xml": lambda root, scene: _safe(root, scene) / "MTD_MSIL2A.xml",
    "zipped product": lambda root, scene: zip_product(_safe(root, scene)),
    "folder of COGs (ESA names)": lambda root, scene: root / "bands" if write_band_folder(
        root / "bands", scene, naming="esa", offset_dn=SENTINEL2_ADD_OFFSET_DN) else None,
    "folder of JP2s (B04.jp2)": lambda root, scene: root / "jp2" if write_band_folder(
        root / "jp2", scene, naming="code", driver="JP2OpenJPEG", declare=False) else None,
    "STAC item": lambda root, scene: write_stac_item(
        root / "item.json",
        write_band_folder(root / "cogs", scene, naming="archive", offset_dn=SENTINEL2_ADD_OFFSET_DN),
        offset_dn=SENTINEL2_ADD_OFFSET_DN),
}


@pytest.mark.parametrize("kind", list(PRODUCTS))
def test_product_maps_like_the_multiband_geotiff(kind, s2_scene, l2a_engine, reference, tmp_path) -> None:
    scene_input = PRODUCTS[kind](tmp_path, s2_scene["scene"])
    expected, expected_summary = reference
    got, summary = map_scene(l2a_engine, scene_input, s2_scene["dem"], tmp_path / "out")
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.isfinite(expected).mean() > 0.8  # the comparison covers most of the scene
    np.testing.assert_allclose(got, expected, atol=1e-5, equal_nan=True)
    assert summary["assessable_area_m2"] == expected_summary["assessable_area_m2"] > 0
    channels = summary["inputs"]["bands"]["channels"]
    assert set(channels) == {*l2a_engine.pipeline.band_set.names}
    assert channels["B4"]["source"] and channels["B4"]["band"] >= 1  # file/subdataset and band, never null
    assert channels["DEM"]["source"] == str(s2_scene["dem"])


def test_offset_product_and_pre_offset_product_give_the_same_probabilities(s2_scene, l2a_engine, tmp_path) -> None:
    """The same reflectances as a baseline 02.14 product (no offset) and a 05.09 one
    (DN + 1000, BOA_ADD_OFFSET -1000 declared)."""
    scene = s2_scene["scene"]
    old = write_safe(tmp_path / "old", scene, level="L2A", baseline="02.14")
    new = write_safe(tmp_path / "new", scene, level="L2A", baseline="05.09")
    with rasterio.open(next(new.rglob("*_B04_10m.jp2"))) as src:  # the files really differ by 1000 DN
        valid = scene.bands["B4"] > 0
        assert np.array_equal(src.read(1)[valid], scene.bands["B4"][valid] + 1000)
    old_probability, _ = map_scene(l2a_engine, old, s2_scene["dem"], tmp_path / "old_out")
    new_probability, _ = map_scene(l2a_engine, new, s2_scene["dem"], tmp_path / "new_out")
    np.testing.assert_allclose(new_probability, old_probability, atol=1e-5, equal_nan=True)


def test_geotiff_scale_and_offset_are_both_applied(s2_scene, tmp_path) -> None:
    """A GeoTIFF declaring scale 1e-4 and offset -0.1 over DN + 1000 reads as the plain one
    (it used to be read with the scale only: every reflectance 0.1 too high)."""
    scene = s2_scene["scene"]
    shifted = {n: np.where(b > 0, b.astype(np.int32) + 1000, 0) for n, b in scene.bands.items()}
    declared = write_multiband(tmp_path / "declared.tif", scene, values=shifted, scale=1e-4, offset=-0.1)
    band_set = make_engine().pipeline.band_set
    window = Window(40, 30, 64, 64)
    with SceneReader(SceneSpec(s2_scene["image"], s2_scene["dem"]), band_set) as plain_reader:
        plain, plain_valid = plain_reader.read(window)
    with SceneReader(SceneSpec(declared, s2_scene["dem"]), band_set) as declared_reader:
        got, valid = declared_reader.read(window)
    assert valid.all() and np.array_equal(valid, plain_valid)
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-6)
    red = band_set.names.index("B4")  # stored = DN / 10^4 / physical_per_unit, by hand
    expected = scene.bands["B4"][30:94, 40:104] / 1e4 / band_set.bands[red].physical_per_unit
    np.testing.assert_allclose(got[red], expected, rtol=1e-5)


def test_coarse_bands_are_upsampled_by_nearest_neighbour(s2_scene, tmp_path) -> None:
    """A 20 m band read on the 10 m grid repeats each 20 m pixel on 2 x 2 pixels (as in
    Landslide4Sense), and a 60 m band on 6 x 6."""
    folder = tmp_path / "bands"
    write_band_folder(folder, s2_scene["scene"], naming="code", bands=("B4", "B5", "B9"))
    band_set = make_engine(bands=None, band_set={"name": "three", "bands": [
        {"name": "B4", "role": "red", "unit": "reflectance", "aliases": ["B04"]},
        {"name": "B5", "role": "red_edge_1", "unit": "reflectance", "aliases": ["B05"]},
        {"name": "B9", "role": "water_vapour", "unit": "reflectance", "aliases": ["B09"]}]},
        features=()).pipeline.band_set
    with SceneReader(SceneSpec(folder), band_set) as reader:
        bands, _ = reader.read(Window(0, 0, 96, 96))
    with rasterio.open(folder / "B05.tif") as src:
        b5 = src.read(1)[:48, :48] / 1e4
    with rasterio.open(folder / "B09.tif") as src:
        b9 = src.read(1)[:16, :16] / 1e4
    np.testing.assert_allclose(bands[1], np.repeat(np.repeat(b5, 2, 0), 2, 1), rtol=1e-6)
    np.testing.assert_allclose(bands[2], np.repeat(np.repeat(b9, 6, 0), 6, 1), rtol=1e-6)


def test_scl_clouds_are_not_assessable_with_their_area_in_the_summary(s2_scene, l2a_engine, tmp_path) -> None:
    scene = s2_scene["scene"]
    scl = np.where(scene.valid(), 4, 0).astype(np.uint8)
    scl[20:60, 100:160] = 9  # cloud, high probability
    scl[120:140, 20:60] = 3  # cloud shadow
    scl[150:170, 150:170] = 6  # water: assessable
    product = write_safe(tmp_path, scene, level="L2A", baseline="05.09", scl=scl)
    out = tmp_path / "out"
    probability, summary = map_scene(l2a_engine, product, s2_scene["dem"], out)
    mask = read_band(out / "mask.tif")
    flagged = np.isin(scl, (3, 9)) & scene.valid()
    assert np.array_equal(mask == MASK_NOT_ASSESSABLE, flagged)
    assert np.isnan(probability[flagged]).all() and np.isfinite(probability[scl == 6]).all()
    assert np.array_equal(mask == MASK_NODATA, ~scene.valid())
    # ground areas: a 10 m UTM pixel here is 100.0x m² on the ellipsoid (tests/trust/test_true_areas.py)
    assert summary["not_assessable_area_m2"] == pytest.approx(flagged.sum() * 100.0, rel=2e-3)
    assert summary["assessable_area_m2"] == pytest.approx((scene.valid() & ~flagged).sum() * 100.0,
                                                          rel=2e-3)
    assert summary["assessable_fraction"] == pytest.approx(1 - flagged.sum() / scene.valid().sum(), abs=1e-6)
    assert summary["not_assessable_m2"]["clouds_shadows_snow_saturated"] == summary["not_assessable_area_m2"]
    assert summary["inputs"]["bands"]["not_assessable_from"]["SCL"]["resolution_m"] == 20


def test_cloud_mask_file_on_another_grid_marks_pixels_not_assessable(s2_scene, l2a_engine, tmp_path) -> None:
    """``--cloud-mask``: any raster, here 30 m, non-zero = not assessable; the polygons avoid it."""
    scene = s2_scene["scene"]
    t = scene.transform
    cloud = np.zeros((64, 64), np.uint8)
    cloud[10:20, 30:50] = 1  # 30 m pixels: rows 30..60, cols 90..150 of the 10 m grid
    mask_path = tmp_path / "clouds.tif"
    with rasterio.open(mask_path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs=scene.crs, transform=rasterio.Affine(30, 0, t.c, 0, -30, t.f)) as dst:
        dst.write(cloud, 1)
    out = tmp_path / "out"
    probability, summary = map_scene(l2a_engine, s2_scene["image"], s2_scene["dem"], out, cloud_mask=mask_path)
    mask = read_band(out / "mask.tif")
    expected = np.zeros(scene.shape, bool)
    expected[30:60, 90:150] = True
    expected &= scene.valid()
    assert np.array_equal(mask == MASK_NOT_ASSESSABLE, expected)
    assert np.isnan(probability[expected]).all()
    assert summary["inputs"]["cloud_mask"] == str(mask_path)
    _, _, wkb, _ = pyogrio.raw.read(out / "landslides.gpkg")
    if len(wkb):
        cut = rasterio.features.rasterize(shapely.from_wkb(wkb), out_shape=scene.shape, transform=t)
        assert not (cut.astype(bool) & expected).any()


def test_dem_covering_part_of_the_scene_is_reported_and_warned(s2_scene, l2a_engine, tmp_path, caplog) -> None:
    with rasterio.open(s2_scene["dem"]) as src:
        half = src.read(1)[:, : src.width // 2]
        profile = src.profile | {"width": half.shape[1]}
    dem = tmp_path / "half_dem.tif"
    with rasterio.open(dem, "w", **profile) as dst:
        dst.write(half, 1)
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        _, summary = map_scene(l2a_engine, s2_scene["image"], dem, out)
    coverage = summary["dem_coverage_fraction"]
    assert 0.3 < coverage < 0.6, coverage
    assert "DEM covers" in caplog.text
    mask = read_band(out / "mask.tif")
    assert (mask[:, -20:][s2_scene["scene"].valid()[:, -20:]] == MASK_NOT_ASSESSABLE).all()
    assert summary["not_assessable_m2"]["no_elevation"] == pytest.approx(
        (mask == MASK_NOT_ASSESSABLE).sum() * 100.0, rel=2e-3)


def test_summary_records_the_band_mapping_of_a_described_raster(s2_scene, l2a_engine, tmp_path) -> None:
    """Matched by description, the band numbers are recorded (``null`` before)."""
    _, summary = map_scene(l2a_engine, s2_scene["image"], s2_scene["dem"], tmp_path / "out")
    channels = summary["inputs"]["bands"]["channels"]
    assert channels["B11"]["band"] == 11 and channels["B11"]["source"] == str(s2_scene["image"])
    assert channels["slope"]["source"].startswith("computed")
    json.dumps(summary)  # plain data


def test_dask_workers_reopen_a_product_from_its_spec(s2_scene, l2a_engine, reference, tmp_path) -> None:
    """Workers get the picklable SceneSpec (the product's path) and open the product themselves."""
    import pickle

    product = write_safe(tmp_path, s2_scene["scene"], level="L2A", baseline="05.09")
    spec = SceneSpec(product, s2_scene["dem"])
    assert pickle.loads(pickle.dumps(spec)) == spec
    options = MappingOptions(window=128, overlap=32, workers=2, dask_processes=False)
    predict_scene(l2a_engine, spec, tmp_path / "out", options)
    np.testing.assert_allclose(read_band(tmp_path / "out" / "probability.tif"), reference[0], atol=1e-5,
                               equal_nan=True)
