"""Per-landslide shape and terrain attributes against hand-computed cases: a rotated rectangle
on a tilted plane, in a projected CRS far from its central meridian and in a geographic CRS.

The "model" thresholds the red band (red 3000 DN inside the drawn shapes, 500 outside), so the
mapped polygons are exactly the rasterised shapes. The plane is defined in ground metres east
and north of the scene centre through PROJ's azimuthal equidistant projection (not through
the code under test), so its true downslope azimuth and relief are known in closed form.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio.features
import shapely
import torch
from affine import Affine

from slidemap.bands import BandSet
from slidemap.data.normalization import ChannelStats
from slidemap.features import InputPipeline
from slidemap.inference.attributes import TerrainStats
from slidemap.inference.engine import TorchEngine
from slidemap.inference.mapping import MappingOptions, predict_scene
from slidemap.inference.postprocess import PostprocessConfig
from slidemap.inference.scene import SceneSpec
from slidemap.io.ground import GroundFrame, rectangle_dimensions
from slidemap.io.vector import read_polygons

RED_BANDS = {
    "name": "red-nir",
    "pixel_size_m": 10.0,
    "bands": [
        {"name": "B4", "role": "red", "physical_per_unit": 0.08, "unit": "reflectance"},
        {"name": "B8", "role": "nir", "physical_per_unit": 0.21, "unit": "reflectance"},
    ],
}
INSIDE_DN, OUTSIDE_DN = 3000, 500
NO_CLEANING = PostprocessConfig(0, 0, 0.0, 0.0)


class RedThreshold(torch.nn.Module):
    """Logit +16 where the normalised red band is that of 3000 DN, -15 where it is 500 DN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 40.0 * (x[:, :1] - 0.8)


@pytest.fixture(scope="module")
def red_engine() -> TorchEngine:
    pipeline = InputPipeline(BandSet.from_dict(RED_BANDS), features=(), pixel_size_m=10.0)
    stats = ChannelStats(pipeline.channel_names, np.full(2, 0.5), np.full(2, 2.0))
    return TorchEngine(RedThreshold(), pipeline, stats, 0.5, "red-threshold", optimize=False)


def _write(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: float | None,
           descriptions: tuple[str, ...] = ()) -> Path:
    data = data[None] if data.ndim == 2 else data
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions, start=1):
            dst.set_band_description(i, text)
    return path


class Ground:
    """Pixel centres of a grid in ground metres (east, north) from the grid's centre, by
    PROJ's azimuthal equidistant projection on WGS 84."""

    def __init__(self, crs: str, transform: Affine, size: int) -> None:
        self.crs, self.transform, self.size = crs, transform, size
        to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lon0, lat0 = to_lonlat.transform(*(transform @ (size / 2, size / 2)))
        self.aeqd = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +ellps=WGS84")
        cols, rows = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
        x, y = transform @ (cols, rows)
        to_ground = pyproj.Transformer.from_crs(crs, self.aeqd, always_xy=True)
        self.east, self.north = (np.asarray(v) for v in to_ground.transform(x, y))
        self.from_ground = pyproj.Transformer.from_crs(self.aeqd, crs, always_xy=True)

    def pixel_mask(self, ground_shape: shapely.Geometry) -> np.ndarray:
        """Pixels whose centre lies in ``ground_shape`` (drawn in ground metres)."""
        in_crs = shapely.transform(ground_shape, lambda c: np.column_stack(
            self.from_ground.transform(c[:, 0], c[:, 1])))
        return rasterio.features.rasterize([(in_crs, 1)], out_shape=(self.size, self.size),
                                           transform=self.transform).astype(bool)


def rotated_rectangle(length_m: float, width_m: float, angle_deg: float,
                      centre: tuple[float, float] = (0.0, 0.0)) -> shapely.Polygon:
    """A ``length × width`` rectangle, its long axis ``angle_deg`` counter-clockwise from east."""
    box = shapely.box(-length_m / 2, -width_m / 2, length_m / 2, width_m / 2)
    return shapely.affinity.translate(shapely.affinity.rotate(box, angle_deg, origin=(0, 0)), *centre)


def map_shapes(tmp_path: Path, engine: TorchEngine, ground: Ground, mask: np.ndarray,
               gradient: tuple[float, float], dem_nodata_box: tuple[slice, slice] | None = None):
    """Map a scene whose red band is high on ``mask``, with a DEM plane ``z = 1000 + a·east +
    b·north`` on the same grid. Returns ``(columns by name, dem with NaN, summary)``."""
    red = np.where(mask, INSIDE_DN, OUTSIDE_DN).astype(np.uint16)
    image = _write(tmp_path / "image.tif", np.stack([red, np.full_like(red, 2000)]), ground.crs,
                   ground.transform, None, ("B4", "B8"))
    a, b = gradient
    dem = (1000.0 + a * ground.east + b * ground.north).astype(np.float32)
    if dem_nodata_box is not None:
        dem[dem_nodata_box] = -9999.0
    dem_path = _write(tmp_path / "dem.tif", dem, ground.crs, ground.transform, -9999.0)
    summary = predict_scene(engine, SceneSpec(image, dem_path), tmp_path / "out",
                            MappingOptions(window=128, overlap=32, postprocess=NO_CLEANING))
    _, columns, _ = read_polygons(tmp_path / "out" / "landslides.gpkg")
    return columns, np.where(dem == -9999.0, np.nan, dem.astype(np.float64)), summary


def expected_aspect_deg(a: float, b: float) -> float:
    """Azimuth (clockwise from true north) of the steepest descent of ``a·east + b·north``."""
    return math.degrees(math.atan2(-a, -b)) % 360.0


def angle_difference(x: float, y: float) -> float:
    return abs((x - y + 180.0) % 360.0 - 180.0)


# 200 km west of the central meridian of UTM 33N: grid north is ~1.4° off true north and
# the scale factor is 1.0001, so a grid-only computation is measurably wrong.
UTM_TRANSFORM = Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 4_200_000.0)
# A geographic grid at 60° N with pixels of 0.0002° × 0.0001° (about 11 m × 11 m on the ground).
GEO_TRANSFORM = Affine(0.0002, 0.0, 10.0, 0.0, -0.0001, 60.0)


@pytest.mark.parametrize(("crs", "transform", "tolerance_m"), [
    ("EPSG:32633", UTM_TRANSFORM, 15.0), ("EPSG:4326", GEO_TRANSFORM, 17.0),
], ids=["utm-off-meridian", "geographic"])
def test_rotated_rectangle_on_a_tilted_plane_has_known_length_width_aspect_and_relief(
    red_engine: TorchEngine, tmp_path: Path, crs: str, transform: Affine, tolerance_m: float
) -> None:
    size, length, width, angle = 192, 1200.0, 300.0, 30.0
    ground = Ground(crs, transform, size)
    mask = ground.pixel_mask(rotated_rectangle(length, width, angle))
    a, b = 0.12, -0.35  # rises to the east and to the south: downslope is north-north-west
    columns, dem, summary = map_shapes(tmp_path, red_engine, ground, mask, (a, b))

    assert summary["count"] == 1
    # the rasterised rectangle's pixel outline is up to one pixel larger on each axis
    assert columns["length_m"][0] == pytest.approx(length, abs=tolerance_m)
    assert columns["width_m"][0] == pytest.approx(width, abs=tolerance_m)
    assert columns["elongation"][0] == pytest.approx(length / width, rel=0.08)
    assert columns["elongation"][0] == pytest.approx(columns["length_m"][0] / columns["width_m"][0])

    assert angle_difference(columns["aspect_deg"][0], expected_aspect_deg(a, b)) < 0.1
    assert columns["mean_slope_deg"][0] == pytest.approx(math.degrees(math.atan(math.hypot(a, b))),
                                                         abs=0.02)
    # relief: exactly that of the DEM under the mapped pixels; and, by hand, the plane's
    # rise across the rectangle: |grad| times its extent along the gradient, within a pixel
    assert columns["elev_min_m"][0] == pytest.approx(np.nanmin(dem[mask]), abs=1e-3)
    assert columns["elev_max_m"][0] == pytest.approx(np.nanmax(dem[mask]), abs=1e-3)
    assert columns["relief_m"][0] == pytest.approx(columns["elev_max_m"][0] - columns["elev_min_m"][0])
    theta = math.radians(angle) - math.atan2(b, a)  # long axis against the gradient direction
    extent = length * abs(math.cos(theta)) + width * abs(math.sin(theta))
    assert columns["relief_m"][0] == pytest.approx(math.hypot(a, b) * extent,
                                                   abs=math.hypot(a, b) * 2 * tolerance_m)
    assert columns["h_over_l"][0] == pytest.approx(columns["relief_m"][0] / columns["length_m"][0])


def test_holes_elongated_shapes_and_dem_nodata(red_engine: TorchEngine, tmp_path: Path) -> None:
    size = 192
    ground = Ground("EPSG:32633", Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 4_200_000.0), size)
    with_hole = shapely.Polygon(rotated_rectangle(600.0, 400.0, 0.0, (-300.0, 500.0)).exterior,
                                [rotated_rectangle(200.0, 100.0, 0.0, (-300.0, 500.0)).exterior.coords[::-1]])
    thin = rotated_rectangle(1500.0, 30.0, -45.0, (300.0, -300.0))
    mask = ground.pixel_mask(with_hole) | ground.pixel_mask(thin)
    # DEM nodata over part of the thin shape: its terrain comes from the other pixels
    nodata_box = (slice(110, 130), slice(0, size))
    columns, dem, summary = map_shapes(tmp_path, red_engine, ground, mask, (0.0, 0.2), nodata_box)
    assert summary["count"] == 2
    order = np.argsort(columns["elongation"])  # the thin one is far more elongated
    holed, elongated = order
    assert columns["area_m2"][holed] == pytest.approx(600 * 400 - 200 * 100, rel=0.02)
    assert columns["length_m"][holed] == pytest.approx(600.0, abs=15)  # the hole does not count
    assert columns["width_m"][holed] == pytest.approx(400.0, abs=15)
    assert columns["length_m"][elongated] == pytest.approx(1500.0, abs=20)
    assert columns["width_m"][elongated] == pytest.approx(30.0, abs=15)
    assert columns["elongation"][elongated] > 30
    assert angle_difference(columns["aspect_deg"][elongated], 180.0) < 0.1  # rises northwards
    thin_mask = ground.pixel_mask(thin)
    assert thin_mask[nodata_box].any() and np.isfinite(dem[thin_mask]).any()
    assert columns["elev_min_m"][elongated] == pytest.approx(np.nanmin(dem[thin_mask]), abs=1e-3)
    assert columns["elev_max_m"][elongated] == pytest.approx(np.nanmax(dem[thin_mask]), abs=1e-3)
    for name in ("elev_min_m", "elev_max_m", "relief_m", "h_over_l", "aspect_deg", "mean_slope_deg"):
        assert np.isfinite(columns[name]).all(), name


def test_a_scene_without_elevation_has_nan_terrain_columns(red_engine, tmp_path: Path) -> None:
    ground = Ground("EPSG:32633", UTM_TRANSFORM, 64)
    red = np.where(ground.pixel_mask(shapely.box(-200, -100, 200, 100)), INSIDE_DN, OUTSIDE_DN)
    image = _write(tmp_path / "image.tif", np.stack([red, red]).astype(np.uint16), ground.crs,
                   ground.transform, None, ("B4", "B8"))
    predict_scene(red_engine, SceneSpec(image), tmp_path / "out",
                  MappingOptions(window=64, overlap=16, postprocess=NO_CLEANING))
    _, columns, _ = read_polygons(tmp_path / "out" / "landslides.gpkg")
    assert columns["length_m"][0] == pytest.approx(400.0, abs=15)
    for name in ("elev_min_m", "relief_m", "h_over_l", "aspect_deg", "mean_slope_deg"):
        assert np.isnan(columns[name]).all(), name


def test_terrain_stats_skip_nan_and_flat_pixels_and_average_directions_on_the_circle() -> None:
    ids = np.array([[1, 1, 1, 2, 2, 3]], np.int32)
    elevation = np.array([[5.0, np.nan, 7.0, 1.0, 1.0, 2.0]])
    # polygon 1: downslope north-east (45°) and north-west (315°): circular mean 0°, not 180°
    dz_dcol = np.array([[-1.0, np.nan, 1.0, 0.0, 0.0, 0.0]])
    dz_drow = np.array([[1.0, np.nan, 1.0, 0.0, 0.0, np.nan]])
    north_up = np.array([[[1.0, 0.0], [0.0, -1.0]]] * 3)  # 1 m pixels, rows run south
    terrain = TerrainStats(north_up)
    terrain.add(ids, elevation, dz_dcol, dz_drow)
    columns = terrain.columns(np.array([10.0, 5.0, 0.0]))
    assert angle_difference(columns["aspect_deg"][0], 0.0) < 1e-9
    np.testing.assert_allclose(columns["mean_slope_deg"][:2], [math.degrees(math.atan(math.sqrt(2))), 0.0])
    np.testing.assert_allclose(columns["relief_m"], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(columns["h_over_l"][:2], [0.2, 0.0])
    assert np.isnan(columns["aspect_deg"][1])  # flat: no direction
    assert np.isnan(columns["mean_slope_deg"][2]) and np.isnan(columns["h_over_l"][2])


@pytest.mark.parametrize(("crs", "x", "y"), [
    ("EPSG:32633", 820_000.0, 6_900_000.0),   # 62° N, far east of the zone's meridian
    ("EPSG:3857", 1_500_000.0, 8_500_000.0),  # Web Mercator at 60° N: scale 2
    ("EPSG:4326", 15.0, -70.0),
])
def test_ground_frame_lengths_and_areas_match_geodesics(crs: str, x: float, y: float) -> None:
    frame = GroundFrame(crs)
    step = 1e-2 if crs == "EPSG:4326" else 1000.0
    polygon = shapely.Polygon([(x, y), (x + 2 * step, y + step), (x + step, y + 3 * step), (x, y + step)])
    (ground,) = frame.around_centroids(np.array([polygon], dtype=object))
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lonlat = shapely.transform(polygon, lambda c: np.column_stack(to_lonlat.transform(c[:, 0], c[:, 1])))
    area, perimeter = pyproj.Geod(ellps="WGS84").geometry_area_perimeter(lonlat)
    assert ground.area == pytest.approx(abs(area), rel=1e-5)
    assert ground.length == pytest.approx(perimeter, rel=1e-5)
    length, width = rectangle_dimensions(np.array([shapely.box(0, 0, 30, 5), shapely.LineString([(0, 0), (3, 4)])],
                                                  dtype=object))
    np.testing.assert_allclose(length, [30.0, 5.0])
    np.testing.assert_allclose(width, [5.0, 0.0])


def test_ground_frame_of_a_local_crs_is_a_plane_in_its_own_unit() -> None:
    """A mine grid in US survey feet, no datum: distances are the grid's, in metres."""
    frame = GroundFrame('LOCAL_CS["mine grid",UNIT["US survey foot",0.304800609601219],'
                        'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    east, north = frame.offsets_m(100.0, 200.0, np.array([110.0, 100.0]), np.array([200.0, 190.0]))
    np.testing.assert_allclose(east, [3.04800609601219, 0.0])
    np.testing.assert_allclose(north, [0.0, -3.04800609601219])
    (ground,) = frame.around_centroids(np.array([shapely.box(0, 0, 100, 10)], dtype=object))
    assert ground.area == pytest.approx(1000 * 0.304800609601219**2)
