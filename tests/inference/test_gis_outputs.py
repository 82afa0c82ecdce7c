"""GIS-grade outputs: COGs with overviews that rio-cogeo accepts without a warning, the mask's
colour table and category names, layers named ``landslides`` that convert with ogr2ogr /
pyogrio without warnings; edge cases (no landslide, a 1 x 1 px scene)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pyogrio
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from slidemap.inference.mapping import (
    MASK_CLASSES,
    MASK_LAYER,
    OUTPUT_NAMES,
    PROBABILITY_LAYER,
    MappingOptions,
    predict_scene,
)
from slidemap.inference.postprocess import PostprocessConfig
from slidemap.inference.scene import SceneSpec
from slidemap.io.atomic import TMP_PREFIX
from slidemap.io.cog import CogWriter, write_cog
from slidemap.io.geotiff import inspect_raster
from slidemap.io.vector import read_polygons

RIO = Path(sys.executable).with_name("rio")


def assert_valid_cog(path: Path) -> None:
    """rio-cogeo's validator, in Python and on the command line with ``--strict`` (warnings
    are errors): valid, no error, no warning."""
    assert cog_validate(path, strict=True, quiet=True) == (True, [], [])
    if RIO.exists():
        result = subprocess.run([str(RIO), "cogeo", "validate", "--strict", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "is a valid cloud optimized GeoTIFF" in result.stdout, result


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory, tiny_engine) -> Path:
    """A 300 x 300 px scene (one overview level) mapped with the tiny model at threshold 0.5."""
    from mapping_helpers import smooth_field, write_raster

    folder = tmp_path_factory.mktemp("gis")
    shape = (300, 300)
    image = np.stack([500 + 2500 * smooth_field(shape, 3), 3000 - 2000 * smooth_field(shape, 4)])
    image[:, :40, :60] = 0  # nodata corner
    write_raster(folder / "image.tif", image.astype(np.uint16), nodata=0, descriptions=("B4", "B8"))
    dem = (800 + 400 * smooth_field((110, 110), 5, 3.0)).astype(np.float32)
    write_raster(folder / "dem.tif", dem, res=30.0, origin=(499_970.0, 4_200_030.0), nodata=-9999.0)
    out = folder / "out"
    predict_scene(tiny_engine, SceneSpec(folder / "image.tif", folder / "dem.tif"), out,
                  MappingOptions(window=128, overlap=32, threshold=0.5))
    return out


def test_probability_and_mask_are_valid_cogs_with_internal_overviews(mapped: Path) -> None:
    for name in ("probability.tif", "mask.tif"):
        assert_valid_cog(mapped / name)
        with rasterio.open(mapped / name) as src:
            assert src.overviews(1) == [2]  # 300 px: one level, down to a single 256 px block
            assert src.block_shapes == [(256, 256)]
            assert src.profile["compress"] == "deflate"
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert not list(mapped.glob(f"{TMP_PREFIX}*"))


def test_mask_has_a_colour_table_and_category_names_for_every_class(mapped: Path) -> None:
    with rasterio.open(mapped / "mask.tif") as src:
        colours = src.colormap(1)
        tags = src.tags(1)
        values = set(np.unique(src.read(1)))
    assert values <= {0, 1, 255} and {0, 255} <= values
    for category in MASK_CLASSES:
        assert colours[category.value] == category.rgba
        assert tags[f"CATEGORY_{category.value}"] == category.name
    assert colours[1][:3] != colours[0][:3] and colours[255][3] == 0  # outside: transparent
    # GDAL's category names (indexed by value) in the sidecar GDAL reads with the file
    sidecar = ElementTree.fromstring((mapped / OUTPUT_NAMES["mask_categories"]).read_text())
    names = [c.text or "" for c in sidecar.iter("Category")]
    assert len(names) == 256
    assert {i: names[i] for i in (0, 1, 2, 255)} == {c.value: c.name for c in MASK_CLASSES}
    if shutil.which("gdalinfo"):
        import json

        info = json.loads(subprocess.run(["gdalinfo", "-json", str(mapped / "mask.tif")],
                                         capture_output=True, text=True, check=True).stdout)
        band = info["bands"][0]
        assert band["colorInterpretation"] == "Palette"
        assert band["categories"][1] == "landslide" and band["categories"][255] == "outside the data"


def test_overviews_average_probabilities_and_keep_the_majority_class(tmp_path: Path) -> None:
    """Probability overviews are 2 x 2 means (NaN = nodata left out); mask overviews the most
    frequent class of each 2 x 2 block, never a value that is no class."""
    from mapping_helpers import write_raster

    grid = inspect_raster(write_raster(tmp_path / "grid.tif", np.zeros((512, 512), np.uint8)))
    rng = np.random.default_rng(0)
    probability = rng.random((512, 512)).astype(np.float32)
    probability[::2, ::2][rng.random((256, 256)) < 0.2] = np.nan
    write_cog(tmp_path / "p.tif", probability, grid, PROBABILITY_LAYER)
    # every 2 x 2 block: three pixels of one class, one of another, the odd one anywhere
    majority = rng.choice([0, 1, 2], size=(256, 256)).astype(np.uint8)
    mask = np.kron(majority, np.ones((2, 2), np.uint8))
    odd = rng.integers(0, 4, size=(256, 256))
    rows, cols = np.indices((256, 256))
    mask[2 * rows + odd // 2, 2 * cols + odd % 2] = (majority + 1) % 3
    write_cog(tmp_path / "m.tif", mask, grid, MASK_LAYER)

    with rasterio.open(tmp_path / "p.tif", overview_level=0) as src:
        overview = src.read(1)
    blocks = probability.reshape(256, 2, 256, 2).transpose(0, 2, 1, 3).reshape(256, 256, 4)
    np.testing.assert_allclose(overview, np.nanmean(blocks, axis=2), rtol=1e-5)
    with rasterio.open(tmp_path / "m.tif", overview_level=0) as src:
        np.testing.assert_array_equal(src.read(1), majority)
    for name in ("p.tif", "m.tif"):
        assert_valid_cog(tmp_path / name)


def test_a_failed_write_leaves_no_file_and_no_scratch(tmp_path: Path) -> None:
    from mapping_helpers import write_raster

    grid = inspect_raster(write_raster(tmp_path / "grid.tif", np.zeros((64, 64), np.uint8)))
    with pytest.raises(RuntimeError, match="interrupted"), CogWriter(tmp_path / "mask.tif", grid,
                                                                      MASK_LAYER) as writer:
        writer.write(np.zeros((32, 64), np.uint8), 0)
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.tif"]


def _layers(path: Path) -> list[str]:
    return [str(name) for name, _ in pyogrio.list_layers(path)]


def test_vector_layers_are_named_landslides_and_convert_without_warnings(
    mapped: Path, tmp_path: Path
) -> None:
    for name in ("landslides.geojson", "landslides.gpkg"):
        assert _layers(mapped / name) == ["landslides"]
    # pyogrio: GeoJSON -> GeoPackage -> Shapefile, any GDAL warning fails the test
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta, _, geometry, fields = pyogrio.raw.read(mapped / "landslides.geojson")
        pyogrio.raw.write(tmp_path / "copy.gpkg", geometry=geometry, field_data=fields,
                          fields=meta["fields"], crs=meta["crs"], geometry_type=meta["geometry_type"],
                          driver="GPKG", layer=_layers(mapped / "landslides.geojson")[0])
    assert _layers(tmp_path / "copy.gpkg") == ["landslides"]
    if not shutil.which("ogr2ogr"):
        pytest.skip("ogr2ogr (gdal-bin) is not installed")
    for source, target, driver in (
        ("landslides.geojson", "from_geojson.gpkg", "GPKG"),
        ("landslides.gpkg", "from_gpkg.geojson", "GeoJSON"),
    ):
        result = subprocess.run(["ogr2ogr", "-f", driver, str(tmp_path / target), str(mapped / source)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert _layers(tmp_path / target) == ["landslides"]
    shp = tmp_path / "shp"
    result = subprocess.run(["ogr2ogr", "-f", "ESRI Shapefile", str(shp), str(mapped / "landslides.gpkg")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in shp.iterdir() if p.name.startswith(".")) == []  # no hidden files
    assert (shp / "landslides.shp").is_file()
    # the only warnings: DBF's 10-character field names shorten the longer attribute names
    warned = [line for line in result.stderr.splitlines() if line.strip()]
    assert all("Normalized/laundered field name" in line for line in warned), warned


def test_a_scene_without_landslides_still_has_named_empty_layers_and_valid_cogs(
    tiny_engine, make_scene, tmp_path: Path
) -> None:
    paths = make_scene(size=96)
    summary = predict_scene(tiny_engine, SceneSpec(paths["image"], paths["dem"]), tmp_path / "out",
                            MappingOptions(window=64, overlap=32, threshold=1.0))
    assert summary["count"] == 0 and summary["total_area_m2"] == 0
    for name in ("landslides.geojson", "landslides.gpkg"):
        geometries, columns, _ = read_polygons(tmp_path / "out" / name)
        assert geometries == [] and _layers(tmp_path / "out" / name) == ["landslides"]
    # GeoJSON has no schema without features; the GeoPackage keeps the typed columns
    assert {"length_m", "aspect_deg", "relief_m", "h_over_l"} <= set(columns)
    for name in ("probability.tif", "mask.tif"):
        assert_valid_cog(tmp_path / "out" / name)
    with rasterio.open(tmp_path / "out" / "mask.tif") as src:
        assert set(np.unique(src.read(1))) <= {0, MASK_LAYER.nodata}


def test_a_one_pixel_scene_maps_to_valid_one_pixel_outputs(tiny_engine, tmp_path: Path) -> None:
    from mapping_helpers import ORIGIN, write_raster

    image = write_raster(tmp_path / "image.tif", np.array([[[2500]], [[900]]], np.uint16),
                         descriptions=("B4", "B8"))
    dem = write_raster(tmp_path / "dem.tif", np.full((3, 3), 850.0, np.float32), res=10.0,
                       origin=(ORIGIN[0] - 10, ORIGIN[1] + 10))
    summary = predict_scene(tiny_engine, SceneSpec(image, dem), tmp_path / "out",
                            MappingOptions(window=64, overlap=16, threshold=0.0,
                                           postprocess=PostprocessConfig(0, 0, 0.0, 0.0)))
    assert summary["count"] == 1 and summary["total_area_m2"] == pytest.approx(100.0, rel=2e-3)
    _, columns, _ = read_polygons(tmp_path / "out" / "landslides.gpkg")
    assert columns["length_m"][0] == pytest.approx(10.0, rel=1e-3)
    assert columns["width_m"][0] == pytest.approx(10.0, rel=1e-3)
    assert columns["relief_m"][0] == 0.0 and np.isnan(columns["aspect_deg"][0])  # flat
    for name in ("probability.tif", "mask.tif"):
        assert_valid_cog(tmp_path / "out" / name)
        with rasterio.open(tmp_path / "out" / name) as src:
            assert (src.width, src.height) == (1, 1) and src.overviews(1) == []
