"""Scene inputs as a hostile user gives them: each is read right or refused on one line.

The Sentinel-2 facts of ``slidemap.bands`` are checked against GDAL's own SENTINEL2 driver
(an independent reference): its band names, wavelengths and resolutions for a product our
writer made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from slidemap.bands import SENTINEL2_BANDS, get_band_set, sentinel2_band
from slidemap.data.synthetic.sentinel2 import write_band_folder, write_safe, write_stac_item
from slidemap.errors import InputError
from slidemap.inference.mapping import MappingOptions, predict_scene
from slidemap.inference.scene import SceneReader, SceneSpec
from slidemap.io.scene_formats import open_scene_source, scene_format
from slidemap.io.scene_source import scene_name
from tests.trust.conftest import assert_no_output, assert_one_line_error, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
import sentinel2_helpers  # noqa: E402
from sentinel2_helpers import L2A_BANDS, make_engine, read_band  # noqa: E402

s2_scene = sentinel2_helpers.s2_scene  # session fixtures shared with tests/inference
l2a_engine = sentinel2_helpers.l2a_engine
tiny_l2a_checkpoint = sentinel2_helpers.tiny_l2a_checkpoint


def test_band_table_agrees_with_gdals_sentinel2_driver(s2_scene, tmp_path) -> None:
    product = write_safe(tmp_path, s2_scene["scene"], level="L1C", baseline="05.09")
    with rasterio.open(product / "MTD_MSIL1C.xml") as ds:
        subdatasets = [s for s in ds.subdatasets if ":TCI:" not in s]
    seen = {}
    for name in subdatasets:
        resolution = int(name.split(":")[-2].removesuffix("m"))
        with rasterio.open(name) as sub:
            for i in range(1, sub.count + 1):
                tags = sub.tags(i)
                if "WAVELENGTH" in tags:
                    seen[tags["BANDNAME"]] = (float(tags["WAVELENGTH"]), resolution, sub.descriptions[i - 1])
    assert set(seen) == {b.name for b in SENTINEL2_BANDS}
    for band in SENTINEL2_BANDS:
        wavelength, resolution, description = seen[band.name]
        assert (band.central_wavelength_nm, band.resolution_m) == (wavelength, resolution)
        assert sentinel2_band(description) is band  # "B4, central wavelength 665 nm" -> B4
    assert get_band_set("l4s14").find("B8A, central wavelength 865 nm") is None  # B8A is not B8


@pytest.mark.parametrize("label, expected", [
    ("B04", "B4"), ("b4", "B4"), ("red", "B4"), ("B4, central wavelength 665 nm", "B4"),
    ("rededge2", "B6"), ("nir08", None), ("swir16", "B11"), ("nir09", "B9"), ("coastal", "B1"),
])
def test_band_labels_of_gdal_and_the_archives_name_l4s14_bands(label, expected) -> None:
    found = get_band_set("l4s14").find(label)
    assert (found.name if found else None) == expected


@pytest.mark.parametrize("path, name", [
    ("x/S2B_MSIL2A_2024_N0509.SAFE", "S2B_MSIL2A_2024_N0509"),
    ("x/S2B_MSIL2A_2024_N0509.SAFE/MTD_MSIL2A.xml", "S2B_MSIL2A_2024_N0509"),
    ("x/S2B_MSIL2A_2024.zip", "S2B_MSIL2A_2024"), ("https://host/items/S2B_T45.json", "S2B_T45"),
    ("scene.tif", "scene"), ("bands/", "bands"),
])
def test_scene_names_for_output_folders(path, name) -> None:
    assert scene_name(path) == name


def test_level1c_product_is_read_with_its_cirrus_band_and_offset(s2_scene, tmp_path) -> None:
    product = write_safe(tmp_path, s2_scene["scene"], level="L1C", baseline="04.00")
    source = open_scene_source(product)
    assert (source.kind, source.processing_level, source.processing_baseline) == ("sentinel2-safe", "L1C", "04.00")
    b10 = next(b for b in source.bands if b.names[0] == "B10")
    assert (b10.resolution_m, b10.scale, b10.offset) == (60, 1e-4, -0.1)  # RADIO_ADD_OFFSET -1000 / 10000
    assert source.scene_classification is None  # L1C has no SCL
    with SceneReader(SceneSpec(product, s2_scene["dem"]), make_engine(bands=None).pipeline.band_set) as reader:
        bands, valid = reader.read(rasterio.windows.Window(60, 60, 6, 6))
    b10_dn = s2_scene["scene"].bands["B10"][60:66, 60:66]
    np.testing.assert_allclose(bands[9][valid], (b10_dn / 1e4 / 0.000905)[valid], rtol=1e-5)


def test_sixty_metre_only_band_set_is_read_on_the_ten_metre_grid(s2_scene, l2a_engine, tmp_path) -> None:
    product = write_safe(tmp_path, s2_scene["scene"], level="L2A", baseline="05.09")
    engine = make_engine(bands=("B1", "B9", "slope", "DEM"), features=("slope",))
    summary = predict_scene(engine, SceneSpec(product, s2_scene["dem"]), tmp_path / "out",
                            MappingOptions(window=128, overlap=32))
    assert summary["size_px"] == [192, 192]
    assert summary["pixel_size_m"] == pytest.approx([10.0, 10.0], rel=1e-3)  # ground metres
    assert {c["resolution_m"] for n, c in summary["inputs"]["bands"]["channels"].items() if n in ("B1", "B9")} == {60}


def test_band_files_on_different_crss_are_warped_onto_the_finest_grid(s2_scene, l2a_engine, tmp_path) -> None:
    folder = tmp_path / "bands"
    files = write_band_folder(folder, s2_scene["scene"], naming="code")
    b12 = files["B12"]  # move B12 into the neighbouring UTM zone
    with rasterio.open(b12) as src:
        dst_crs = "EPSG:32646"
        transform, width, height = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds)
        profile = src.profile | {"crs": dst_crs, "transform": transform, "width": width, "height": height}
        data = np.zeros((height, width), src.dtypes[0])
        reproject(src.read(1), data, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs=dst_crs, resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
    b12.unlink()
    with rasterio.open(b12, "w", **profile) as dst:
        dst.write(data, 1)
    source = open_scene_source(folder)
    assert any("2 CRSs" in note for note in source.notes) and source.grid.crs.to_epsg() == 32645
    summary = predict_scene(l2a_engine, SceneSpec(folder, s2_scene["dem"]), tmp_path / "out",
                            MappingOptions(window=128, overlap=32))
    assert any("CRSs" in note for note in summary["inputs"]["bands"]["notes"])
    assert summary["assessable_fraction"] > 0.5


# ------------------------------------------------------------------ refusals, through the CLI
def _predict(capsys, checkpoint, scene_input, dem, out):
    return run_cli(capsys, ["predict", "--checkpoint", checkpoint, scene_input, "--dem", dem, "--out", out,
                            "--engine", "torch", "--window", "128", "--overlap", "32"])


def test_safe_with_a_missing_band_file_is_refused_naming_the_band(s2_scene, tiny_l2a_checkpoint, tmp_path, capsys) -> None:
    product = write_safe(tmp_path, s2_scene["scene"], level="L2A", baseline="05.09", omit=("B5",))
    result = _predict(capsys, tiny_l2a_checkpoint, product, s2_scene["dem"], tmp_path / "out")
    assert_one_line_error(result, product.name, "cannot find band(s) B5", "files for B5 are missing",
                          "the model needs B1, B2")
    assert_no_output(tmp_path / "out")


def test_l1c_checkpoint_on_an_l2a_product_is_refused_naming_b10(s2_scene, tmp_path, capsys) -> None:
    from sentinel2_helpers import write_engine_checkpoint

    checkpoint = write_engine_checkpoint(tmp_path / "l4s14.ckpt", make_engine(bands=None))
    product = write_safe(tmp_path, s2_scene["scene"], level="L2A", baseline="05.09")
    result = _predict(capsys, checkpoint, product, s2_scene["dem"], tmp_path / "out")
    assert_one_line_error(result, product.name, "cannot find band(s) B10", "B9, B10, B11")


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", None])
def test_zip_that_is_not_a_product_is_refused(content, s2_scene, tiny_l2a_checkpoint, tmp_path, capsys) -> None:
    archive = tmp_path / "S2B_MSIL2A_fake.zip"
    if content is None:  # a valid zip with other things in it
        import zipfile

        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("holiday/photo.jpg", b"jpeg")
    else:
        archive.write_bytes(content)
    result = _predict(capsys, tiny_l2a_checkpoint, archive, s2_scene["dem"], tmp_path / "out")
    assert_one_line_error(result, archive.name, "zip")
    assert_no_output(tmp_path / "out")


def test_stac_item_with_an_unreachable_http_asset_is_refused_on_one_line(s2_scene, tiny_l2a_checkpoint, tmp_path, capsys) -> None:
    files = write_band_folder(tmp_path / "cogs", s2_scene["scene"], naming="archive")
    item_path = write_stac_item(tmp_path / "item.json", files)
    item = json.loads(item_path.read_text())
    item["assets"]["red"]["href"] = "http://127.0.0.1:9/offline/B04.tif"  # nothing listens on port 9
    item_path.write_text(json.dumps(item))
    result = _predict(capsys, tiny_l2a_checkpoint, item_path, s2_scene["dem"], tmp_path / "out")
    assert_one_line_error(result, "item.json", "asset 'red'", "http://127.0.0.1:9/offline/B04.tif")


def test_stac_url_that_cannot_be_fetched_is_refused_on_one_line(s2_scene, tiny_l2a_checkpoint, tmp_path, capsys) -> None:
    url = "http://127.0.0.1:9/catalog/items/S2B_T45RUL.json"
    assert scene_format(url).name == "stac-item"
    result = _predict(capsys, tiny_l2a_checkpoint, url, s2_scene["dem"], tmp_path / "out")
    assert_one_line_error(result, url, "cannot fetch the STAC item")


def test_stac_collection_instead_of_an_item_is_refused(tmp_path) -> None:
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps({
        "type": "Collection", "stac_version": "1.0.0", "id": "c", "description": "d", "license": "x",
        "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}, "links": []}))
    with pytest.raises(InputError, match="collection.json: is a STAC Collection, not an Item"):
        open_scene_source(collection)


def test_predict_maps_a_safe_folder_from_the_command_line(s2_scene, tiny_l2a_checkpoint, tmp_path, capsys) -> None:
    product = write_safe(tmp_path, s2_scene["scene"], level="L2A", baseline="05.09")
    out = tmp_path / "out"
    result = _predict(capsys, tiny_l2a_checkpoint, product, s2_scene["dem"], out)
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["bands"]["format"] == "sentinel2-safe"
    assert summary["radiometry"]["processing_level"]["scene"] == "L2A"
    assert set(np.unique(read_band(out / "mask.tif"))) <= {0, 1, 255}
    assert set(summary["inputs"]["bands"]["channels"]) == set(L2A_BANDS)


def test_synth_scene_also_writes_a_product(tmp_path, capsys) -> None:
    result = run_cli(capsys, ["synth-scene", "--out", tmp_path / "scene", "--size", "72", "--product", "L1C"])
    assert result.code == 0, result.err
    (product,) = (tmp_path / "scene").glob("S2B_MSIL1C_*.SAFE")
    source = open_scene_source(product)
    assert source.processing_level == "L1C" and len(source.bands) == 13  # B1-B12 and B8A
    with rasterio.open(tmp_path / "scene" / "image.tif") as src:
        b4 = src.read(4)
    with SceneReader(SceneSpec(product), get_band_set("l4s14").subset(["B4"])) as reader:
        bands, valid = reader.read(rasterio.windows.Window(0, 0, 72, 72))
    np.testing.assert_allclose(bands[0][valid], (b4 / 1e4 / 0.0445)[valid], rtol=1e-5)


def test_stac_item_of_baseline_0400_without_declared_offset_gets_esas_offset(s2_scene, tmp_path) -> None:
    """Some catalogues serve 04.00+ files as they are without raster:bands offset: ESA's -1000 DN
    is applied from the item's processing baseline, and said so."""
    scene = s2_scene["scene"]
    files = write_band_folder(tmp_path / "cogs", scene, naming="archive", offset_dn=-1000, declare=False,
                              bands=("B4", "B8"))
    item = write_stac_item(tmp_path / "item.json", files, baseline="05.10", declare=False)
    source = open_scene_source(item)
    assert {(b.scale, b.offset) for b in source.bands} == {(1e-4, -0.1)}
    assert "processing baseline 05.10 without a declared offset" in source.notes[0]
    band_set = get_band_set("l4s14").subset(["B4", "B8"])
    with SceneReader(SceneSpec(item), band_set) as reader:
        bands, valid = reader.read(rasterio.windows.Window(0, 0, 64, 64))
    np.testing.assert_allclose(bands[0][valid], (scene.bands["B4"][:64, :64] / 1e4 / 0.0445)[valid], rtol=1e-5)
