"""Terrain features against analytic surfaces: planes, a cone, a sun-facing slope."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slidemap.features import terrain


def grid(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) index grids of a size × size raster."""
    return np.mgrid[0:size, 0:size].astype(np.float64)


@pytest.mark.parametrize(("dz_dx", "dz_dy"), [(0.0, 0.0), (0.3, 0.0), (0.0, -1.0), (0.5, 0.25), (-2.0, 3.0)])
@pytest.mark.parametrize("pixel_size_m", [1.0, 10.0, 12.5])
def test_slope_of_a_plane_is_arctan_of_its_gradient_everywhere(dz_dx, dz_dy, pixel_size_m) -> None:
    rows, cols = grid()
    elevation = 100.0 + dz_dx * cols * pixel_size_m + dz_dy * rows * pixel_size_m
    slope = terrain.slope_deg(elevation, pixel_size_m)  # Eq. 15
    assert slope.dtype == np.float32 and slope.shape == (32, 32)
    np.testing.assert_allclose(slope, math.degrees(math.atan(math.hypot(dz_dx, dz_dy))), atol=1e-4)


def test_slope_honours_the_pixel_size() -> None:
    rows, cols = grid()
    elevation = 5.0 * cols  # 5 m per pixel
    np.testing.assert_allclose(terrain.slope_deg(elevation, 5.0), 45.0, atol=1e-4)
    np.testing.assert_allclose(terrain.slope_deg(elevation, 10.0), math.degrees(math.atan(0.5)), atol=1e-4)


def test_slope_of_a_cone_is_constant_away_from_the_apex() -> None:
    rows, cols = grid(65)
    pixel_size_m, grade = 2.0, 0.7
    radius_m = np.hypot(rows - 32, cols - 32) * pixel_size_m
    slope = terrain.slope_deg(1000.0 - grade * radius_m, pixel_size_m)
    away = (radius_m > 3 * pixel_size_m) & (radius_m < 30 * pixel_size_m)
    # central differences on a cone are exact up to O(h²/r²) curvature terms
    np.testing.assert_allclose(slope[away], math.degrees(math.atan(grade)), atol=0.6)
    assert slope[32, 32] < 5.0  # the apex is symmetric: central differences cancel


def test_slope_of_a_single_row_or_pixel_is_defined() -> None:
    assert terrain.slope_deg(np.array([[0.0, 10.0, 20.0]]), 10.0) == pytest.approx(45.0)
    assert terrain.slope_deg(np.array([[7.0]]), 10.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="pixel_size_m"):
        terrain.slope_deg(np.zeros((3, 3)), 0.0)


def test_hillshade_of_flat_ground_is_sine_of_sun_altitude() -> None:
    np.testing.assert_allclose(terrain.hillshade(np.full((8, 8), 300.0), 10.0), math.sin(math.radians(45)), atol=1e-6)


def test_hillshade_is_one_facing_the_sun_and_zero_facing_away() -> None:
    rows, cols = grid(16)
    # rows run south, cols east: z rising to the south-east at 45°, so the face looks north-west,
    # towards a sun at azimuth 315° and altitude 45°: the normal points straight at it.
    facing_sun = (rows + cols) / math.sqrt(2) * 10.0
    np.testing.assert_allclose(terrain.hillshade(facing_sun, 10.0), 1.0, atol=1e-6)
    np.testing.assert_allclose(terrain.hillshade(-facing_sun, 10.0), 0.0, atol=1e-6)


def test_relief_is_zero_on_a_plane_and_positive_on_a_peak() -> None:
    rows, cols = grid(40)
    plane = 3.0 * rows - 2.0 * cols + 1500.0
    half = terrain.RELIEF_WINDOW_PX // 2
    np.testing.assert_allclose(terrain.relief(plane)[half:-half, half:-half], 0.0, atol=1e-4)
    peak = np.zeros((40, 40))
    peak[20, 20] = 225.0
    relief = terrain.relief(peak, window_px=15)
    assert relief[20, 20] == pytest.approx(225.0 - 1.0)  # minus the window mean 225/225
    assert relief[0, 0] == 0.0
    with pytest.raises(ValueError, match="odd"):
        terrain.relief(peak, window_px=4)


elevation = arrays(
    np.float32, (5, 6),
    elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
)


@settings(max_examples=60, deadline=None)
@given(z=elevation, pixel_size_m=st.floats(1e-3, 1e4))
def test_terrain_features_are_finite_for_any_finite_elevation(z, pixel_size_m) -> None:
    for out in (terrain.slope_deg(z, pixel_size_m), terrain.hillshade(z, pixel_size_m), terrain.relief(z, 3)):
        assert out.dtype == np.float32 and np.isfinite(out).all()
    assert (terrain.slope_deg(z, pixel_size_m) <= 90).all()
