"""The scene map figure: probability over the image, landslide polygons outlined where they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.transform import from_origin

from slidemap.io.vector import write_polygons
from slidemap.plots.scene_map import plot_scene_map

CRS_UTM = CRS.from_epsg(32645)
TRANSFORM = from_origin(500_000.0, 3_000_000.0, 10.0, 10.0)


def _write(path: Path, array: np.ndarray, dtype: str) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[-1], height=array.shape[-2],
                       count=array.shape[0], dtype=dtype, crs=CRS_UTM, transform=TRANSFORM) as dst:
        dst.write(array.astype(dtype))
    return path


def test_scene_map_outlines_each_polygon_at_its_pixel_position(tmp_path: Path) -> None:
    size = 200
    rng = np.random.default_rng(0)
    image = _write(tmp_path / "image.tif", rng.integers(200, 3000, (4, size, size)), "uint16")
    probability = np.zeros((1, size, size), np.float32)
    probability[0, 40:60, 100:130] = 0.9
    prob_path = _write(tmp_path / "probability.tif", probability, "float32")
    # one rectangle: columns 100-130, rows 40-60, in map coordinates
    x0, y0 = TRANSFORM @ (100, 40)
    x1, y1 = TRANSFORM @ (130, 60)
    gpkg = write_polygons(tmp_path / "landslides.gpkg", [shapely.box(x0, y1, x1, y0)],
                          {"area_m2": np.array([600.0 * 10.0])}, CRS_UTM)

    # max_side 100 halves the display: the outline must sit at columns 50-65, rows 20-30
    fig = plot_scene_map(image, prob_path, gpkg, rgb_bands=(3, 2, 1), max_side=100, title="t")
    left, right = fig.axes[:2]
    assert "1 landslide" in left.get_title()
    (line,) = left.get_lines()
    xs, ys = line.get_data()
    assert np.allclose([xs.min(), xs.max()], [50 - 0.5, 65 - 0.5])
    assert np.allclose([ys.min(), ys.max()], [20 - 0.5, 30 - 0.5])
    shown = right.get_images()[-1].get_array()
    assert shown.shape == (100, 100)
    assert np.isclose(shown[25, 57], 0.9) and np.ma.is_masked(shown[5, 5])


def test_scene_map_without_polygons_says_none(tmp_path: Path) -> None:
    image = _write(tmp_path / "image.tif", np.full((4, 64, 64), 1000), "uint16")
    prob = _write(tmp_path / "probability.tif", np.zeros((1, 64, 64)), "float32")
    fig = plot_scene_map(image, prob, None, rgb_bands=(3, 2, 1))
    assert "0 landslide" in fig.axes[0].get_title() and not fig.axes[0].get_lines()


def test_scene_map_counts_landslides_not_rings(tmp_path: Path) -> None:
    image = _write(tmp_path / "image.tif", np.full((4, 64, 64), 1000), "uint16")
    prob = _write(tmp_path / "probability.tif", np.zeros((1, 64, 64)), "float32")
    x0, y0 = TRANSFORM @ (10, 10)
    x1, y1 = TRANSFORM @ (40, 40)
    hx0, hy0 = TRANSFORM @ (20, 20)
    hx1, hy1 = TRANSFORM @ (25, 25)
    ring = shapely.box(x0, y1, x1, y0).difference(shapely.box(hx0, hy1, hx1, hy0))  # one hole
    gpkg = write_polygons(tmp_path / "landslides.gpkg", [ring], {"area_m2": np.array([ring.area])}, CRS_UTM)
    fig = plot_scene_map(image, prob, gpkg, rgb_bands=(3, 2, 1))
    assert "1 landslide(s)" in fig.axes[0].get_title()
    assert len(fig.axes[0].get_lines()) == 2  # its exterior and its hole are both drawn
