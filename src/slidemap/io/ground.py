"""Ground distances and directions in any CRS, on the CRS's own ellipsoid (pyproj).

Raster coordinates may be metres of a projection (with its scale error and grid
convergence), feet, or degrees; a landslide's length must be metres on the ground and its
direction an azimuth from true north. :class:`GroundFrame` measures through geodesics: the
offset of a point from an origin is the geodesic distance ``d`` and forward azimuth ``α``
between them on the ellipsoid (:class:`pyproj.Geod`), as east ``d·sin α`` and north
``d·cos α`` metres. That is the azimuthal equidistant projection centred on the origin:
exact along lines through the origin and true within ``(r/R)²/6`` across them (2·10⁻⁷ at
r = 5 km), so lengths, angles and areas of a landslide-sized figure drawn in it around its
own centre are ground values whatever the CRS. All methods take and return numpy arrays
(one call for every vertex of every polygon).

Areas are measured by :class:`GroundAreas`, the one home of "how many square metres is this
pixel": pixel corners are projected into a Lambert azimuthal equal-area projection centred
on the raster, on the CRS's own datum (equal-area on the ellipsoid, so areas there are ground
areas), and each pixel is the quadrilateral of its corners. Web Mercator inflates areas by
``1 / cos² φ`` (4× at 60° N), degrees and feet are no metres, and a rotated or sheared
geotransform's pixel area is its determinant, not ``a · e``: all are right here. Large
windows are measured on a grid of sample pixels every :data:`SAMPLE_STEP_PX` and
interpolated (the area varies smoothly over a raster; the error is far below 0.01 %).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pyproj
import shapely
from affine import Affine
from numpy.typing import ArrayLike
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion

from slidemap.errors import InputError

#: spacing of the exactly measured sample pixels of a large window (px), at most.
SAMPLE_STEP_PX = 64
#: ground distance between two sample pixels, at most (m): the area's curvature over it is
#: far below 1e-6 relative in any CRS (cos² of the latitude over 0.5 km included).
SAMPLE_STEP_M = 500.0
#: windows up to this many pixels are measured pixel by pixel.
EXACT_LIMIT_PX = 65_536


class GroundFrame:
    """Ground metres and true azimuths for coordinates of ``crs``.

    Args:
        crs: any CRS pyproj accepts (a rasterio ``CRS``, ``"EPSG:32633"``, WKT). A local
            (engineering) CRS without a datum, e.g. a mine grid, is taken as a flat plane in
            its own linear unit with grid north as north.
    """

    def __init__(self, crs: Any) -> None:
        crs = _pyproj_crs(crs)
        geodetic = crs.geodetic_crs
        self._metres_per_unit: float | None = None
        if geodetic is None:
            self._metres_per_unit = _linear_unit_m(crs)
            return
        self._to_lonlat = pyproj.Transformer.from_crs(crs, geodetic, always_xy=True)
        self._geod = geodetic.get_geod()
        assert self._geod is not None

    def lonlat(self, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (degrees, on the CRS's datum) of points ``(x, y)``.

        Raises:
            ValueError: the CRS is a local one, with no datum.
        """
        if self._metres_per_unit is not None:
            raise ValueError("a local CRS has no longitude and latitude")
        lon, lat = self._to_lonlat.transform(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)

    def offsets_m(
        self, origin_x: ArrayLike, origin_y: ArrayLike, x: ArrayLike, y: ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """East and north ground metres of points ``(x, y)`` from origins ``(origin_x,
        origin_y)`` (arrays of the same shape, or scalars that broadcast)."""
        x, y, origin_x, origin_y = np.broadcast_arrays(
            *(np.asarray(a, np.float64) for a in (x, y, origin_x, origin_y)))
        if self._metres_per_unit is not None:  # a local plane
            return (x - origin_x) * self._metres_per_unit, (y - origin_y) * self._metres_per_unit
        lon0, lat0 = self.lonlat(origin_x.ravel(), origin_y.ravel())
        lon, lat = self.lonlat(x.ravel(), y.ravel())
        azimuth, _, distance = self._geod.inv(lon0, lat0, lon, lat)
        azimuth = np.radians(np.asarray(azimuth, np.float64))
        distance = np.asarray(distance, np.float64)
        east = (distance * np.sin(azimuth)).reshape(x.shape)
        north = (distance * np.cos(azimuth)).reshape(x.shape)
        return east, north

    def pixel_jacobians(self, transform: Affine, cols: ArrayLike, rows: ArrayLike) -> np.ndarray:
        """Ground metres per pixel step at pixel positions ``(cols, rows)`` of a raster with
        affine ``transform`` (any rotation, shear, CRS).

        Returns:
            ``(n, 2, 2) float64`` ``J`` with columns the (east, north) ground displacement of
            one step along a row (+1 column) and along a column (+1 row), so a pixel offset
            ``(dc, dr)`` is ``J @ (dc, dr)`` metres on the ground near that position.
        """
        cols = np.atleast_1d(np.asarray(cols, np.float64))
        rows = np.atleast_1d(np.asarray(rows, np.float64))
        x0, y0 = transform @ (cols, rows)
        jacobians = np.empty((cols.size, 2, 2), np.float64)
        for axis, (step_c, step_r) in enumerate(((1.0, 0.0), (0.0, 1.0))):
            x1, y1 = transform @ (cols + step_c, rows + step_r)
            east, north = self.offsets_m(x0, y0, x1, y1)
            jacobians[:, 0, axis] = east
            jacobians[:, 1, axis] = north
        return jacobians

    def around_centroids(self, geometries: ArrayLike) -> np.ndarray:
        """Each geometry (coordinates of the CRS) redrawn in ground metres (east, north)
        around its own centroid: its shape, size and orientation on the ground."""
        geometries = np.asarray(geometries, dtype=object)
        if geometries.size == 0:
            return geometries
        coords, index = shapely.get_coordinates(geometries, return_index=True)
        centres = shapely.get_coordinates(shapely.centroid(geometries))
        east, north = self.offsets_m(centres[index, 0], centres[index, 1], coords[:, 0], coords[:, 1])
        # set_coordinates fills the array it is given with new geometries: give it a copy
        return shapely.set_coordinates(geometries.copy(), np.column_stack([east, north]))


def rectangle_dimensions(ground_geometries: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Length and width, m, of the minimum rotated rectangle of each geometry given in ground
    metres (:meth:`GroundFrame.around_centroids`): length the longer side, width the shorter
    (0 for a degenerate, line-like geometry)."""
    geometries = np.asarray(ground_geometries, dtype=object)
    length = np.zeros(geometries.size, np.float64)
    width = np.zeros(geometries.size, np.float64)
    for i, rectangle in enumerate(shapely.minimum_rotated_rectangle(geometries)):
        if isinstance(rectangle, shapely.Polygon) and not rectangle.is_empty:
            corners = shapely.get_coordinates(rectangle)[:3]
            sides = np.hypot(*np.diff(corners, axis=0).T)
        else:  # all points on a line (or one point): the line's length, no width
            sides = np.array([shapely.length(rectangle), 0.0])
        length[i], width[i] = sides.max(), sides.min()
    return length, width


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
        source: the raster's file, named in errors.

    Raises:
        InputError: the pixel corners cannot be placed on the ellipsoid (outside the CRS's
            domain), naming the file and the CRS.
    """

    def __init__(self, crs: Any, transform: Affine, width: int, height: int,
                 source: Any = None) -> None:
        self.source = source
        self.crs = _pyproj_crs(crs)
        self.transform = Affine(*tuple(transform)[:6])
        self.width, self.height = int(width), int(height)
        self._last: tuple[tuple[int, int, int, int], np.ndarray] | None = None
        self._last_cells: tuple[tuple[Any, ...], np.ndarray] | None = None
        geodetic = self.crs.geodetic_crs
        self._to_equal_area: pyproj.Transformer | None = None
        self._unit_area = abs(self.transform.determinant) * _linear_unit_m(self.crs) ** 2
        if geodetic is None:  # an engineering CRS: map units are ground units
            return
        to_geodetic = pyproj.Transformer.from_crs(self.crs, geodetic, always_xy=True)
        lon, lat = to_geodetic.transform(*(self.transform @ (self.width / 2, self.height / 2)))
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise InputError(f"the raster's centre lies outside its CRS's domain ({self.crs.name})",
                             source)
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
                             "their ground area is undefined", self.source)
        return area

    def pixel_areas_m2(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Ground area of every pixel of a window, ``(height, width) float64`` m² (the last
        window's areas are kept: a strip is usually measured for several masks)."""
        key = (int(row_off), int(col_off), int(height), int(width))
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        areas = self._measure(*key)
        areas.flags.writeable = False
        self._last = (key, areas)
        return areas

    def _measure(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        rows = np.arange(row_off, row_off + height)
        cols = np.arange(col_off, col_off + width)
        if height * width <= EXACT_LIMIT_PX or self._to_equal_area is None:
            return self._corner_areas(rows, cols)
        sample_rows = _samples(rows, self._sample_step)
        sample_cols = _samples(cols, self._sample_step)
        coarse = self._corner_areas(sample_rows, sample_cols)
        along_cols = _interp_axis(coarse, sample_cols, cols, axis=1)  # small: sample rows only
        return _interp_rows(along_cols, sample_rows, rows)

    def pixel_area_m2(self, row: float, col: float) -> float:
        """Ground area of the pixel at ``(row, col)`` (fractional: the pixel there), m²."""
        r = np.array([math.floor(row)])
        c = np.array([math.floor(col)])
        return float(self._corner_areas(r, c)[0, 0])

    @functools.cached_property
    def _sample_step(self) -> int:
        """Pixels between exactly measured samples: :data:`SAMPLE_STEP_PX`, fewer for pixels
        so large that it would span more than :data:`SAMPLE_STEP_M` of ground."""
        side = math.sqrt(self.centre_pixel_area_m2)
        return max(1, min(SAMPLE_STEP_PX, int(SAMPLE_STEP_M // side)))

    @functools.cached_property
    def centre_pixel_area_m2(self) -> float:
        """Ground area of the raster's centre pixel, m² (for thresholds in m²)."""
        return self.pixel_area_m2(self.height // 2, self.width // 2)

    def mask_area_m2(self, mask: np.ndarray, row_off: int = 0, col_off: int = 0) -> float:
        """Ground area of the ``True`` pixels of ``mask (h, w)`` placed at ``(row_off, col_off)``, m².

        A large window is summed by cells of :attr:`_sample_step` pixels: each cell's count
        of ``True`` pixels times the exact area of its centre pixel (the area varies by less
        than 3e-4 across a 500 m cell even in Web Mercator at 60° N; summed over a strip the
        difference from per-pixel areas is ~1e-6), many times faster than per-pixel areas.
        """
        mask = np.asarray(mask, dtype=bool)
        height, width = mask.shape
        if self._exact(height, width):
            if not mask.any():
                return 0.0
            return float(np.sum(self.pixel_areas_m2(row_off, col_off, height, width), where=mask))
        step = self._sample_step
        by_cols = np.add.reduceat(mask.view(np.uint8), np.arange(0, width, step), axis=1,
                                  dtype=np.int64)
        counts = np.add.reduceat(by_cols, np.arange(0, height, step), axis=0)
        if not counts.any():
            return 0.0
        return float((counts * self._cell_areas(row_off, col_off, height, width)).sum())

    def label_areas_m2(self, labels: np.ndarray, n_labels: int, row_off: int = 0,
                       col_off: int = 0) -> np.ndarray:
        """Ground area of the pixels of each label of ``labels (h, w)`` (0 = none, 1..n_labels)
        placed at ``(row_off, col_off)``: ``(n_labels + 1,) float64`` m² (index 0 unused).
        Large windows by cells, as :meth:`mask_area_m2`."""
        labels = np.asarray(labels)
        height, width = labels.shape
        rows, cols = np.nonzero(labels)
        values = labels[rows, cols]
        if self._exact(height, width):
            weights = self.pixel_areas_m2(row_off, col_off, height, width)[rows, cols]
        else:
            step = self._sample_step
            weights = self._cell_areas(row_off, col_off, height, width)[rows // step, cols // step]
        return np.bincount(values, weights=weights, minlength=n_labels + 1)

    def _exact(self, height: int, width: int) -> bool:
        return height * width <= EXACT_LIMIT_PX or self._to_equal_area is None

    def _cell_areas(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Exact area of the centre pixel of every cell of :attr:`_sample_step` pixels of a
        window, ``(ceil(h / step), ceil(w / step))`` (the last window's kept)."""
        key = ("cells", int(row_off), int(col_off), int(height), int(width))
        if self._last_cells is not None and self._last_cells[0] == key:
            return self._last_cells[1]
        step = self._sample_step
        rows, cols = -(-height // step), -(-width // step)
        centre_rows = np.minimum(row_off + step * np.arange(rows) + step // 2, row_off + height - 1)
        centre_cols = np.minimum(col_off + step * np.arange(cols) + step // 2, col_off + width - 1)
        cells = self._corner_areas(centre_rows, centre_cols)
        self._last_cells = (key, cells)
        return cells


def _samples(index: np.ndarray, step: int = SAMPLE_STEP_PX) -> np.ndarray:
    """Every ``step``-th of ``index``, with its last element."""
    picked = index[::step]
    return picked if picked[-1] == index[-1] else np.append(picked, index[-1])


def _interp_rows(values: np.ndarray, at: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows ``values`` (at sample rows ``at``, sorted) to rows
    ``targets`` (consecutive), one band of rows between two samples at a time (no full-size
    index copies: a 512 × 10980 strip in a few tens of milliseconds)."""
    out = np.empty((targets.size, values.shape[1]), np.float64)
    if at.size == 1:
        out[:] = values[0]
        return out
    first = int(targets[0])
    for k in range(at.size - 1):
        lo, hi = int(at[k]), int(at[k + 1])
        band = slice(lo - first, hi - first + (k == at.size - 2))  # the last band takes its end
        weight = (np.arange(band.start, band.stop, dtype=np.float64) + first - lo) / (hi - lo)
        out[band] = values[k]
        out[band] += weight[:, None] * (values[k + 1] - values[k])
    return out


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


def ground_pixel_size_m(crs: Any, transform: Affine, width: int, height: int,
                        source: Any = None) -> tuple[float, float]:
    """``(x, y)`` ground distance between neighbouring pixel centres at the raster's centre, m:
    the lengths of the columns of :meth:`GroundFrame.pixel_jacobians` there (geodesics on
    the CRS's ellipsoid; for a CRS without a datum, the affine's column norms in its unit).

    Raises:
        InputError: the geotransform or the CRS is degenerate there (naming ``source``).
    """
    jacobian = GroundFrame(crs).pixel_jacobians(Affine(*tuple(transform)[:6]), [width / 2],
                                                [height / 2])[0]
    size_x, size_y = (float(v) for v in np.hypot(jacobian[0], jacobian[1]))
    if not (math.isfinite(size_x) and math.isfinite(size_y)) or size_x <= 0 or size_y <= 0:
        raise InputError("cannot measure the raster's pixels on the ground: its centre lies "
                         "outside the CRS's domain, or the geotransform is degenerate", source)
    return size_x, size_y
