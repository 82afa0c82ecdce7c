"""Ground areas and pixel sizes on the ellipsoid, for any CRS and any affine geotransform.

The one home of "how many square metres is this pixel". A raster's pixels are
parallelograms in its CRS (the affine may rotate and shear them); their area on the
ground depends on the CRS's distortion (Web Mercator inflates areas by ``1 / cos² φ``: 4×
at 60° N), on the units (degrees, feet) and on the geotransform (its determinant, not
``a · e``). :class:`GroundAreas` projects pixel corners into a Lambert azimuthal
equal-area projection centred on the raster, on the CRS's own datum (equal-area on the
ellipsoid, so areas there are ground areas), and measures each pixel as the quadrilateral
of its corners. Large windows are measured on a grid of sample pixels every
:data:`SAMPLE_STEP_PX` and interpolated (the area varies smoothly over a raster; the error
is far below 0.01 %).

Pixel sizes (for terrain gradients) are geodesic distances between neighbouring pixel
centres at the raster's centre (:func:`ground_pixel_size_m`, pyproj's ``Geod``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pyproj
from affine import Affine
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion

from slidemap.errors import InputError

#: spacing of the exactly measured sample pixels of a large window (px).
SAMPLE_STEP_PX = 16
#: windows up to this many pixels are measured pixel by pixel.
EXACT_LIMIT_PX = 65_536


def _pyproj_crs(crs: Any) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


def _linear_unit_m(crs: pyproj.CRS) -> float:
    """Metres per unit of a CRS without a datum (an engineering CRS); 1 when unknown."""
    axes = crs.axis_info
    factor = axes[0].unit_conversion_factor if axes else 1.0
    return float(factor) if factor and math.isfinite(factor) else 1.0


class GroundAreas:
    """Ground area of the pixels of one raster grid, m².

    Args:
        crs: the raster's CRS (rasterio or pyproj, or anything pyproj reads).
        transform: its affine pixel → CRS transform (rotation and shear allowed).
        width, height: its size, px.

    Raises:
        InputError: the pixel corners cannot be placed on the ellipsoid (outside the CRS's
            domain), naming the CRS.
    """

    def __init__(self, crs: Any, transform: Affine, width: int, height: int) -> None:
        self.crs = _pyproj_crs(crs)
        self.transform = Affine(*tuple(transform)[:6])
        self.width, self.height = int(width), int(height)
        geodetic = self.crs.geodetic_crs
        self._to_equal_area: pyproj.Transformer | None = None
        self._unit_area = abs(self.transform.determinant) * _linear_unit_m(self.crs) ** 2
        if geodetic is None:  # an engineering CRS: map units are ground units
            return
        to_geodetic = pyproj.Transformer.from_crs(self.crs, geodetic, always_xy=True)
        lon, lat = to_geodetic.transform(*(self.transform @ (self.width / 2, self.height / 2)))
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise InputError(f"the raster's centre lies outside its CRS's domain ({self.crs.name})")
        equal_area = ProjectedCRS(
            conversion=LambertAzimuthalEqualAreaConversion(latitude_natural_origin=lat,
                                                           longitude_natural_origin=lon),
            geodetic_crs=geodetic,
        )
        self._to_equal_area = pyproj.Transformer.from_crs(self.crs, equal_area, always_xy=True)

    def _corner_areas(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Exact areas ``(len(rows), len(cols))`` of the pixels at ``rows × cols``."""
        if self._to_equal_area is None:
            return np.full((rows.size, cols.size), self._unit_area)
        r = rows.astype(np.float64)[:, None, None]
        c = cols.astype(np.float64)[None, :, None]
        dr = np.array([0.0, 0.0, 1.0, 1.0])[None, None, :]
        dc = np.array([0.0, 1.0, 1.0, 0.0])[None, None, :]
        t = self.transform
        col, row = c + dc, r + dr
        x = t.a * col + t.b * row + t.c
        y = t.d * col + t.e * row + t.f
        ex, ey = self._to_equal_area.transform(x.ravel(), y.ravel())
        ex = np.asarray(ex).reshape(x.shape)
        ey = np.asarray(ey).reshape(y.shape)
        # a quadrilateral's area is half the cross product of its diagonals
        area = 0.5 * np.abs((ex[..., 2] - ex[..., 0]) * (ey[..., 3] - ey[..., 1])
                            - (ex[..., 3] - ex[..., 1]) * (ey[..., 2] - ey[..., 0]))
        if not np.isfinite(area).all():
            raise InputError(f"pixels of the raster lie outside its CRS's domain ({self.crs.name}); "
                             "their ground area is undefined")
        return area

    def pixel_areas_m2(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Ground area of every pixel of a window, ``(height, width) float64`` m²."""
        rows = np.arange(row_off, row_off + height)
        cols = np.arange(col_off, col_off + width)
        if height * width <= EXACT_LIMIT_PX or self._to_equal_area is None:
            return self._corner_areas(rows, cols)
        sample_rows = _samples(rows)
        sample_cols = _samples(cols)
        coarse = self._corner_areas(sample_rows, sample_cols)
        along_cols = _interp_axis(coarse, sample_cols, cols, axis=1)
        return _interp_axis(along_cols, sample_rows, rows, axis=0)

    def pixel_area_m2(self, row: float, col: float) -> float:
        """Ground area of the pixel at ``(row, col)`` (fractional: the pixel there), m²."""
        r = np.array([math.floor(row)])
        c = np.array([math.floor(col)])
        return float(self._corner_areas(r, c)[0, 0])

    @functools.cached_property
    def centre_pixel_area_m2(self) -> float:
        """Ground area of the raster's centre pixel, m² (for thresholds in m²)."""
        return self.pixel_area_m2(self.height // 2, self.width // 2)

    def mask_area_m2(self, mask: np.ndarray, row_off: int = 0, col_off: int = 0) -> float:
        """Ground area of the ``True`` pixels of ``mask (h, w)`` placed at ``(row_off, col_off)``, m²."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return 0.0
        areas = self.pixel_areas_m2(row_off, col_off, *mask.shape)
        return float(areas[mask].sum())


def _samples(index: np.ndarray) -> np.ndarray:
    """Every :data:`SAMPLE_STEP_PX`-th of ``index``, with its last element."""
    picked = index[::SAMPLE_STEP_PX]
    return picked if picked[-1] == index[-1] else np.append(picked, index[-1])


def _interp_axis(values: np.ndarray, at: np.ndarray, targets: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` (sampled at ``at`` along ``axis``) to ``targets``."""
    if at.size == 1:
        return np.repeat(values, targets.size, axis=axis)
    upper = np.clip(np.searchsorted(at, targets, side="right"), 1, at.size - 1)
    lower = upper - 1
    weight = (targets - at[lower]) / (at[upper] - at[lower])
    shape = [1, 1]
    shape[axis] = targets.size
    w = weight.reshape(shape)
    return np.take(values, lower, axis=axis) * (1.0 - w) + np.take(values, upper, axis=axis) * w


def ground_pixel_size_m(crs: Any, transform: Affine, width: int, height: int) -> tuple[float, float]:
    """``(x, y)`` ground distance between neighbouring pixel centres at the raster's centre, m.

    Along a row (the affine's first column ``(a, d)``) and along a column (``(b, e)``),
    measured as geodesics on the CRS's ellipsoid; for a CRS without a datum, the column
    norms in the CRS's units.
    """
    pcrs = _pyproj_crs(crs)
    t = Affine(*tuple(transform)[:6])
    geodetic = pcrs.geodetic_crs
    if geodetic is None:
        unit = _linear_unit_m(pcrs)
        return math.hypot(t.a, t.d) * unit, math.hypot(t.b, t.e) * unit
    to_geodetic = pyproj.Transformer.from_crs(pcrs, geodetic, always_xy=True)
    col, row = width / 2, height / 2
    points = [t @ (col, row), t @ (col + 1, row), t @ (col, row + 1)]
    lons, lats = to_geodetic.transform([p[0] for p in points], [p[1] for p in points])
    geod = geodetic.get_geod()
    assert geod is not None
    _, _, distances = geod.inv([lons[0], lons[0]], [lats[0], lats[0]], lons[1:], lats[1:])
    size_x, size_y = (float(d) for d in distances)
    if not (math.isfinite(size_x) and math.isfinite(size_y)) or size_x <= 0 or size_y <= 0:
        raise InputError(f"cannot measure the raster's pixels on the ground ({pcrs.name}): the "
                         "geotransform or the CRS is degenerate")
    return size_x, size_y
