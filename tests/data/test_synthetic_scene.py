"""The synthetic GeoTIFF scene: bands, georeferencing, DEM grid, labels, nodata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from slidemap.cli import main as cli_main  # noqa: E402
from slidemap.data.synthetic import generate_scene  # noqa: E402


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_scene(tmp_path_factory.mktemp("scene"), size_px=600, seed=4)


def test_image_has_12_described_uint16_bands_in_utm_at_10_m(scene) -> None:
    with rasterio.open(scene["image"]) as src:
        assert src.count == 12 and src.dtypes == ("uint16",) * 12
        assert src.descriptions == tuple(f"B{i}" for i in range(1, 13))
        assert src.crs.is_projected and src.crs.to_epsg() == 32645
        assert (src.transform.a, -src.transform.e) == (10.0, 10.0)
        assert src.nodata == 0 and src.profile["tiled"]
        image = src.read()
    nodata = (image == 0).all(axis=0)
    assert 0.005 < nodata.mean() < 0.1  # the corner outside the swath
    valid = image[:, ~nodata]
    assert (valid > 0).all() and 0.01 < np.median(valid[7]) / 10_000 < 0.6  # NIR reflectance


def test_dem_is_30_m_metres_covering_the_image(scene) -> None:
    with rasterio.open(scene["image"]) as img, rasterio.open(scene["dem"]) as dem:
        assert dem.crs == img.crs and dem.dtypes == ("float32",)
        assert (dem.transform.a, -dem.transform.e) == (30.0, 30.0)
        assert (dem.bounds.left, dem.bounds.top) == (img.bounds.left, img.bounds.top)
        assert dem.bounds.right >= img.bounds.right and dem.bounds.bottom <= img.bounds.bottom
        elevation = dem.read(1)
    assert 0 < elevation.min() < elevation.max() < 9000


def test_labels_are_on_the_image_grid_with_some_landslides(scene) -> None:
    with rasterio.open(scene["image"]) as img, rasterio.open(scene["labels"]) as lab:
        assert lab.transform == img.transform and lab.shape == img.shape and lab.crs == img.crs
        labels = lab.read(1)
        nodata = img.read(1) == 0
    assert set(np.unique(labels)) <= {0, 1, 255}
    assert (labels[nodata] == 255).all()
    assert 0.005 < (labels == 1).mean() < 0.08


def test_blocks_join_without_seams(scene) -> None:
    # Rendering runs in 480 px blocks: a row across a block border must not jump more than
    # neighbouring rows inside a block do (NIR on a vegetated scene).
    with rasterio.open(scene["image"]) as src:
        nir = src.read(8).astype(float)
    steps = np.abs(np.diff(nir, axis=0)).mean(axis=1)
    assert steps[479] < 3 * np.median(steps)


def test_synth_scene_command(tmp_path: Path, capsys) -> None:
    assert cli_main(["synth-scene", "--out", str(tmp_path), "--size", "128", "--seed", "1"]) == 0
    assert "landslide pixels" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("*.tif")) == ["dem.tif", "image.tif", "labels.tif"]
