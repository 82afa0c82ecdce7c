"""Land cover from terrain and smooth random fields.

Steep ground is forest or grass/shrub (trees give way to shrub above the treeline). Flat
ground — valley floors, the only place these occur — holds the *look-alikes* of landslides:
ploughed fields in rectangular parcels, gravel riverbeds along meandering rivers, roads and
built-up areas. They share the bare-soil spectrum of landslides (see ``spectra.py``), so a
pixel's colour alone cannot tell them apart; slope and shape can. Roads also run along
contour lines across steep slopes (thin, so only their shape separates them).
"""

from __future__ import annotations

from enum import IntEnum
from statistics import NormalDist

import numpy as np

from slidemap.data.synthetic.conditions import Conditions
from slidemap.data.synthetic.noise import hash_uniform


class LandCover(IntEnum):
    """Land-cover codes of the synthetic generator (0 = outside the image)."""

    FOREST = 1
    SHRUB = 2
    CROP = 3
    BARE_FIELD = 4
    RIVERBED = 5
    WATER = 6
    ROAD = 7
    URBAN = 8
    LANDSLIDE = 9


#: Classes that look like landslides spectrally (bare soil, gravel, sealed ground).
CONFUSERS: tuple[LandCover, ...] = (
    LandCover.BARE_FIELD,
    LandCover.RIVERBED,
    LandCover.ROAD,
    LandCover.URBAN,
)


def _quantile(p: float) -> float:
    """Standard-normal quantile: the threshold that a unit-variance field exceeds with 1 - p."""
    return NormalDist().inv_cdf(min(max(p, 1e-6), 1 - 1e-6))


def _level_set_band(field: np.ndarray, half_width_px: float) -> np.ndarray:
    """Pixels within ``half_width_px`` of the zero level of a smooth ``field``: thin lines."""
    g_row, g_col = np.gradient(field)
    return np.abs(field) < half_width_px * np.maximum(np.hypot(g_row, g_col), 1e-6)


def classify(
    dem_m: np.ndarray,
    slope_deg: np.ndarray,
    smooth_slope_deg: np.ndarray,
    fields: dict[str, np.ndarray],
    origin_rc: tuple[int, int],
    cond: Conditions,
) -> np.ndarray:
    """Land cover of every pixel (landslides are drawn over it later).

    Args:
        dem_m, slope_deg, smooth_slope_deg: (H, W) metres and degrees; the smoothed slope
            (a few hundred metres) tells a valley floor from a flat spot on a hillside.
        fields: unit-variance smooth random fields (H, W) named in ``render.FIELD_SCALES_PX``.
        origin_rc: global (row, col) of the first pixel, so parcels do not depend on tiling.

    Returns:
        (H, W) uint8 :class:`LandCover` codes.
    """
    cover = fields["cover"]
    lc = np.full(dem_m.shape, LandCover.SHRUB, dtype=np.uint8)
    forest = (cover < _quantile(cond.forest_share)) & (dem_m < cond.treeline_m + 150.0 * cover)
    lc[forest] = LandCover.FOREST

    floor = smooth_slope_deg < cond.floor_slope_deg
    rows, cols = np.mgrid[0 : dem_m.shape[0], 0 : dem_m.shape[1]]
    rows, cols = rows + origin_rc[0], cols + origin_rc[1]
    angle = np.radians(cond.field_angle_deg)
    u = (rows * np.cos(angle) + cols * np.sin(angle)) / cond.field_size_px[0]
    v = (-rows * np.sin(angle) + cols * np.cos(angle)) / cond.field_size_px[1]
    parcel = hash_uniform(cond.hash_seed, np.floor(u), np.floor(v))
    margin = (np.minimum(u % 1.0, v % 1.0) * min(cond.field_size_px)) < 1.0  # hedges and paths
    farm = floor & (fields["farm"] < _quantile(cond.farm_share)) & (slope_deg < 15.0)
    lc[farm & (parcel < cond.bare_field_share)] = LandCover.BARE_FIELD
    crop = (parcel >= cond.bare_field_share) & (parcel < cond.bare_field_share + cond.crop_share)
    lc[farm & crop] = LandCover.CROP
    lc[farm & margin] = LandCover.SHRUB
    if cond.urban_share > 0:
        lc[floor & (fields["urban"] > _quantile(1.0 - cond.urban_share))] = LandCover.URBAN

    river = np.abs(fields["river"])
    lc[floor & (river < cond.river_half_width)] = LandCover.RIVERBED
    lc[floor & (river < 0.35 * cond.river_half_width)] = LandCover.WATER

    roads = (
        floor
        & _level_set_band(fields["road"], cond.road_half_width_px)
        & (river >= cond.river_half_width)
    )
    if cond.contour_road_m is not None:
        contour = _level_set_band(dem_m - cond.contour_road_m, cond.road_half_width_px)
        roads |= contour & (fields["road_presence"] > 0.2) & (slope_deg < 50.0)
    lc[roads] = LandCover.ROAD
    return lc
