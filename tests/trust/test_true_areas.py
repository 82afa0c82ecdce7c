"""True areas: pixel areas, ``area_m2`` and ``total_area_m2`` are ground areas on the
ellipsoid in any CRS (geographic, Web Mercator at any latitude, feet, polar), for rotated
and sheared geotransforms; checked against pyproj's geodesic areas within 0.5 %."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import mapping

from slidemap.io.geotiff import inspect_raster
from slidemap.io.ground import GroundAreas
from slidemap.io.vector import read_polygons
from tests.trust.conftest import run_cli, scene_dem, scene_image

TOLERANCE = 0.005  # the 0.5 %


def _geodetic(crs: str) -> tuple[pyproj.Transformer, pyproj.Geod]:
    pcrs = pyproj.CRS(crs)
    return (pyproj.Transformer.from_crs(pcrs, pcrs.geodetic_crs, always_xy=True),
            pcrs.geodetic_crs.get_geod())


def footprint_area_m2(crs: str, transform: Affine, width: int, height: int) -> float:
    """Geodesic area of the raster's footprint, its edges densified (independent reference)."""
    n = 400
    t = np.linspace(0.0, 1.0, n, endpoint=False)
    cols = np.concatenate([t * width, np.full(n, width), (1 - t) * width, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * height, np.full(n, height), (1 - t) * height])
    x = transform.a * cols + transform.b * rows + transform.c
    y = transform.d * cols + transform.e * rows + transform.f
    to_geodetic, geod = _geodetic(crs)
    lon, lat = to_geodetic.transform(x, y)
    area, _ = geod.polygon_area_perimeter(lon, lat)
    return abs(area)


def _mercator(lat: float, lon: float = 10.0) -> tuple[float, float]:
    return pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)


CASES: dict[str, tuple[str, Affine, int, int]] = {
    **{f"web mercator {lat} N": ("EPSG:3857", Affine(10, 0, _mercator(lat)[0], 0, -10, _mercator(lat)[1]), 200, 150)
       for lat in (0, 30, 60, 75)},
    "web mercator 60 S": ("EPSG:3857", Affine(10, 0, _mercator(-60)[0], 0, -10, _mercator(-60)[1]), 200, 150),
    **{f"geographic {lat} N": ("EPSG:4326", Affine(1e-4, 0, 10.0, 0, -1e-4, lat), 200, 150)
       for lat in (0, 45, 70)},
    "geographic, 0.5 degree pixels": ("EPSG:4326", Affine(0.5, 0, 10.0, 0, -0.5, 62.0), 6, 4),
    "utm rotated 30 degrees": ("EPSG:32633", Affine.translation(500_000, 4_200_000)
                               * Affine.rotation(30) * Affine.scale(10, -10), 200, 150),
    "utm sheared": ("EPSG:32633", Affine.translation(500_000, 4_200_000)
                    * Affine.shear(20, 0) * Affine.scale(10, -10), 200, 150),
    "state plane in US feet": ("EPSG:2229", Affine(30, 0, 6_500_000, 0, -30, 1_800_000), 200, 150),
    "polar stereographic": ("EPSG:3413", Affine(50, 0, -200_000, 0, -50, -2_000_000), 200, 150),
}


@pytest.mark.parametrize("name", list(CASES))
def test_pixel_areas_sum_to_the_geodesic_area_of_the_footprint(name: str) -> None:
    crs, transform, width, height = CASES[name]
    areas = GroundAreas(CRS.from_string(crs), transform, width, height)
    ours = areas.pixel_areas_m2(0, 0, height, width).sum()
    reference = footprint_area_m2(crs, transform, width, height)
    assert ours == pytest.approx(reference, rel=TOLERANCE)
    # the sampled interpolation of large windows is the same measure
    big = GroundAreas(CRS.from_string(crs), transform, 4 * width, 4 * height)
    sampled = big.pixel_areas_m2(0, 0, 4 * height, 4 * width)
    exact = big._corner_areas(np.arange(0, 4 * height, 37), np.arange(0, 4 * width, 37))
    np.testing.assert_allclose(sampled[::37, ::37], exact, rtol=1e-6)


@pytest.mark.parametrize("case", ["web mercator 60 N", "geographic 45 N", "utm rotated 30 degrees"])
def test_pixel_size_is_the_geodesic_distance_between_neighbouring_pixels(
    tmp_path: Path, case: str
) -> None:
    crs, transform, _, _ = CASES[case]
    path = tmp_path / "r.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs=crs, transform=transform) as dst:
        dst.write(np.zeros((1, 64, 64), np.uint8))
    info = inspect_raster(path)
    to_geodetic, geod = _geodetic(crs)
    centre, right, below = (transform @ p for p in ((32, 32), (33, 32), (32, 33)))
    lon, lat = to_geodetic.transform(*zip(centre, right, below, strict=True))
    _, _, (dx, dy) = geod.inv([lon[0]] * 2, [lat[0]] * 2, lon[1:], lat[1:])
    assert info.pixel_size_m == pytest.approx((dx, dy), rel=1e-6)


def _write_grid(path: Path, array: np.ndarray, crs: str, transform: Affine,
                descriptions: tuple[str, ...] = ()) -> Path:
    data = array[None] if array.ndim == 2 else array
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions, start=1):
            dst.set_band_description(i, text)
    return path


@pytest.mark.parametrize("case", ["web mercator 60 N", "utm rotated 30 degrees"])
def test_mapped_areas_are_ground_areas(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """Everything a landslide (threshold 0): one polygon, the whole scene; its ``area_m2``,
    ``total_area_m2`` and its GeoJSON polygon's geodesic area all equal the footprint's."""
    crs, transform, _, _ = CASES[case]
    size = 48
    image = _write_grid(tmp_path / "scene" / "image.tif", scene_image(size), crs, transform, ("B4", "B8"))
    dem = _write_grid(tmp_path / "scene" / "dem.tif", scene_dem(size), crs, transform)
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, "--threshold", "0", "--no-postprocess", "--engine", "torch"])
    assert result.code == 0, result.err
    reference = footprint_area_m2(crs, transform, size, size)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 1
    assert summary["total_area_m2"] == pytest.approx(reference, rel=TOLERANCE)
    geometries, columns, _ = read_polygons(out / "landslides.geojson")
    assert columns["area_m2"][0] == pytest.approx(reference, rel=TOLERANCE)
    geod = pyproj.Geod(ellps="WGS84")
    polygon = geometries[0].segmentize(1e-5)  # GeoJSON edges are straight in lon/lat
    measured, _ = geod.geometry_area_perimeter(polygon)
    assert abs(measured) == pytest.approx(reference, rel=TOLERANCE), mapping(polygon)["type"]
