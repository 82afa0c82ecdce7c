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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import shapely
from affine import Affine
from numpy.typing import ArrayLike


class GroundFrame:
    """Ground metres and true azimuths for coordinates of ``crs``.

    Args:
        crs: any CRS pyproj accepts (a rasterio ``CRS``, ``"EPSG:32633"``, WKT). A local
            (engineering) CRS without a datum, e.g. a mine grid, is taken as a flat plane in
            its own linear unit with grid north as north.
    """

    def __init__(self, crs: Any) -> None:
        crs = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        geodetic = crs.geodetic_crs
        self._metres_per_unit: float | None = None
        if geodetic is None:
            self._metres_per_unit = float(crs.axis_info[0].unit_conversion_factor or 1.0)
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
