"""Shape and terrain attributes of each landslide polygon, in ground metres and true azimuths.

Shape (:func:`shape_columns`), from the polygon alone:

* ``length_m``, ``width_m``: the long and short sides of the polygon's minimum rotated
  rectangle, drawn in ground metres around the polygon's centroid
  (:class:`~slidemap.io.ground.GroundFrame`), so they are true in any CRS (degrees too);
* ``elongation``: ``length_m / width_m`` (≥ 1).

Terrain (:class:`TerrainStats`), accumulated strip by strip from the elevation under each
polygon's pixels (a DEM, or the image's own elevation band); NaN when there is none, and
elevation nodata (NaN) inside a polygon is left out of every statistic:

* ``mean_slope_deg``: mean ground slope, ``atan |∇z|`` with ``∇z`` in metres per ground
  metre;
* ``aspect_deg``: mean downslope direction, degrees clockwise from true north, the circular
  mean of the pixels' aspects (the direction of the resultant of their unit downslope
  vectors; flat pixels, with no aspect, are left out; NaN when all are flat);
* ``elev_min_m``, ``elev_max_m``, ``relief_m`` (``H = elev_max_m − elev_min_m``);
* ``h_over_l``: ``relief_m / length_m``, the landslide's height-to-length ratio (for an
  elongated slide the rectangle's length approximates its runout ``L``).

Per-pixel gradients come in pixel units (metres of elevation per column and per row step)
and are turned into ground gradients with each polygon's pixel-to-ground Jacobian ``J``
(``∇_ground z = J⁻ᵀ ∇_pixel z``), which takes rotated or sheared geotransforms, projection
scale and meridian convergence, and the unequal metres per degree of a geographic CRS into
account.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from affine import Affine

from slidemap.io.ground import GroundFrame, rectangle_dimensions

#: Ground gradient (m/m) below which a pixel counts as flat: no aspect (1e-6 ≈ 0.0001°).
FLAT_GRADIENT = 1e-6

TERRAIN_COLUMNS: tuple[str, ...] = (
    "mean_slope_deg", "aspect_deg", "elev_min_m", "elev_max_m", "relief_m", "h_over_l",
)


def shape_columns(geometries: Sequence[shapely.Geometry], frame: GroundFrame) -> dict[str, np.ndarray]:
    """``length_m``, ``width_m`` and ``elongation`` of polygons given in the frame's CRS."""
    hulls = shapely.convex_hull(np.asarray(list(geometries), dtype=object))
    length, width = rectangle_dimensions(frame.around_centroids(hulls))
    with np.errstate(divide="ignore", invalid="ignore"):
        elongation = np.where(width > 0, length / width, np.nan)
    return {"length_m": length, "width_m": width, "elongation": elongation}


def polygon_jacobians(
    polygons_px: Sequence[shapely.Polygon], transform: Affine, frame: GroundFrame
) -> np.ndarray:
    """``(n, 2, 2)`` pixel-to-ground Jacobians at the centroids of polygons given in pixel
    coordinates (x = column, y = row) of a raster with ``transform``."""
    if not polygons_px:
        return np.zeros((0, 2, 2), np.float64)
    centres = shapely.get_coordinates(shapely.centroid(np.asarray(list(polygons_px), dtype=object)))
    return frame.pixel_jacobians(transform, centres[:, 0], centres[:, 1])


class TerrainStats:
    """Per-polygon terrain sums over strips (see the module docstring for the columns).

    Args:
        jacobians: ``(n, 2, 2)`` pixel-to-ground Jacobian of each polygon
            (:func:`polygon_jacobians`); polygon ``i`` has id ``i + 1`` in the strips.
    """

    def __init__(self, jacobians: np.ndarray) -> None:
        n = len(jacobians)
        # row 0 belongs to id 0 (no polygon): an identity, never used for a result
        inverse_t = np.broadcast_to(np.eye(2), (n + 1, 2, 2)).copy()
        if n:
            inverse_t[1:] = np.linalg.inv(jacobians).transpose(0, 2, 1)
        self._inverse_t = inverse_t
        self.elev_min = np.full(n + 1, np.inf)
        self.elev_max = np.full(n + 1, -np.inf)
        self.sum_slope = np.zeros(n + 1)
        self.slope_count = np.zeros(n + 1, np.int64)
        self.sum_east = np.zeros(n + 1)
        self.sum_north = np.zeros(n + 1)

    def add(self, ids: np.ndarray, elevation_m: np.ndarray, dz_dcol: np.ndarray,
            dz_drow: np.ndarray) -> None:
        """Accumulate one strip.

        Args:
            ids: ``(h, w) int32`` polygon ids (0 = none), from
                :func:`~slidemap.inference.vectorize.rasterize_ids`.
            elevation_m: ``(h, w)`` elevation, metres, NaN where unknown.
            dz_dcol, dz_drow: ``(h, w)`` elevation change per column and per row step,
                metres, NaN where undefined.
        """
        size = self.elev_min.size
        inside = ids > 0
        known = inside & np.isfinite(elevation_m)
        labels, values = ids[known], elevation_m[known].astype(np.float64)
        np.minimum.at(self.elev_min, labels, values)
        np.maximum.at(self.elev_max, labels, values)

        sloped = inside & np.isfinite(dz_dcol) & np.isfinite(dz_drow)
        labels = ids[sloped]
        gradient_px = np.stack([dz_dcol[sloped], dz_drow[sloped]], axis=1).astype(np.float64)
        gradient = np.einsum("nij,nj->ni", self._inverse_t[labels], gradient_px)  # (east, north)
        steepness = np.hypot(gradient[:, 0], gradient[:, 1])
        self.sum_slope += np.bincount(labels, np.degrees(np.arctan(steepness)), minlength=size)
        self.slope_count += np.bincount(labels, minlength=size)
        facing = steepness > FLAT_GRADIENT
        downslope = -gradient[facing] / steepness[facing, None]
        self.sum_east += np.bincount(labels[facing], downslope[:, 0], minlength=size)
        self.sum_north += np.bincount(labels[facing], downslope[:, 1], minlength=size)

    def columns(self, length_m: np.ndarray) -> dict[str, np.ndarray]:
        """The terrain columns (:data:`TERRAIN_COLUMNS`), NaN where undefined."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_slope = self.sum_slope[1:] / self.slope_count[1:]
            elev_min = np.where(np.isfinite(self.elev_min[1:]), self.elev_min[1:], np.nan)
            elev_max = np.where(np.isfinite(self.elev_max[1:]), self.elev_max[1:], np.nan)
            relief = elev_max - elev_min
            h_over_l = np.where(length_m > 0, relief / length_m, np.nan)
        east, north = self.sum_east[1:], self.sum_north[1:]
        aspect = np.where(np.hypot(east, north) > 0,
                          np.degrees(np.arctan2(east, north)) % 360.0, np.nan)
        return {"mean_slope_deg": mean_slope, "aspect_deg": aspect, "elev_min_m": elev_min,
                "elev_max_m": elev_max, "relief_m": relief, "h_over_l": h_over_l}


def no_terrain_columns(n: int) -> dict[str, np.ndarray]:
    """The terrain columns for ``n`` polygons of a scene without elevation: all NaN."""
    return {name: np.full(n, np.nan) for name in TERRAIN_COLUMNS}
