"""Cleaning a predicted landslide mask (paper Fig. 1, "post-processing"): morphology,
minimum object area, small-hole filling.

Two stages, so a scene of any size is cleaned in strips with bounded memory and gives the
same result as a whole-array run:

1. **Morphology** (:func:`morphology`, local): binary opening with a disk of
   ``opening_radius_px`` (removes specks and 1-px bridges), then closing with a disk of
   ``closing_radius_px`` (closes 1-px gaps). It depends on ``2·(r_open + r_close)`` px of
   context (:attr:`PostprocessConfig.context_px`), which a strip is read with.
2. **Objects** (:func:`filter_objects`, on polygons of connected components, 4-connected):
   holes smaller than ``max_hole_area_m2`` are filled, then objects smaller than
   ``min_area_m2`` are removed. Components crossing strip borders are merged first
   (:func:`slidemap.inference.vectorize.merge_pieces`), so areas are those of whole objects.

Defaults suit 10 m Sentinel-2 pixels: radius 1 px (a 3×3 cross), minimum object 500 m²
(5 pixels), holes up to 500 m² filled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from scipy import ndimage

from slidemap.errors import ConfigError


@dataclass(frozen=True)
class PostprocessConfig:
    """Post-processing options (0 switches a step off).

    Attributes:
        opening_radius_px: disk radius of the binary opening, px.
        closing_radius_px: disk radius of the binary closing, px.
        min_area_m2: objects with a smaller area (after hole filling) are removed, m².
        max_hole_area_m2: holes (enclosed background) with a smaller area are filled, m².
    """

    opening_radius_px: int = 1
    closing_radius_px: int = 1
    min_area_m2: float = 500.0
    max_hole_area_m2: float = 500.0

    def __post_init__(self) -> None:
        for name in ("opening_radius_px", "closing_radius_px", "min_area_m2", "max_hole_area_m2"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"post-processing {name} must be >= 0, got {value!r}")

    @property
    def context_px(self) -> int:
        """Rows of context a strip needs for exact morphology at its borders."""
        return 2 * (int(self.opening_radius_px) + int(self.closing_radius_px))


def disk(radius_px: int) -> np.ndarray:
    """``(2r+1, 2r+1) bool`` disk structuring element (radius 1 = the 3×3 cross)."""
    r = int(radius_px)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y) <= r * r


def morphology(mask: np.ndarray, config: PostprocessConfig) -> np.ndarray:
    """Opening then closing of an ``(H, W) bool`` mask with disks.

    Outside the array counts as "unknown": erosions treat it as foreground and dilations as
    background, so objects touching the array edge are not eaten from outside (``ndimage``'s
    default would shrink them at the border).
    """
    out = np.asarray(mask, dtype=bool)
    if config.opening_radius_px > 0:
        element = disk(config.opening_radius_px)
        out = ndimage.binary_erosion(out, element, border_value=1)
        out = ndimage.binary_dilation(out, element, border_value=0)
    if config.closing_radius_px > 0:
        element = disk(config.closing_radius_px)
        out = ndimage.binary_dilation(out, element, border_value=0)
        out = ndimage.binary_erosion(out, element, border_value=1)
    return out


def threshold_mask(probability: np.ndarray, threshold: float) -> np.ndarray:
    """``(H, W) bool``: probability ≥ ``threshold`` (NaN, i.e. nodata, is background)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(probability) >= threshold


def filter_objects(
    polygons: Sequence[shapely.Polygon], config: PostprocessConfig,
    pixel_area_m2: float | Callable[[float, float], float],
) -> list[shapely.Polygon]:
    """Fill small holes, then drop small objects.

    Args:
        polygons: one polygon per connected component, in pixel coordinates (1 px² = 1 pixel).
        config: thresholds in m².
        pixel_area_m2: area of one pixel, m², or ``(row, col) -> m²`` for grids whose pixel
            area varies (:meth:`slidemap.io.ground.GroundAreas.pixel_area_m2`), taken at each
            polygon's centroid.

    Returns:
        The kept polygons, holes below ``max_hole_area_m2`` removed.
    """
    kept: list[shapely.Polygon] = []
    for polygon in polygons:
        if callable(pixel_area_m2):
            centre = polygon.centroid
            local_area = pixel_area_m2(centre.y, centre.x)
        else:
            local_area = pixel_area_m2
        max_hole_px = config.max_hole_area_m2 / local_area
        min_area_px = config.min_area_m2 / local_area
        holes = [ring for ring in polygon.interiors if shapely.Polygon(ring).area >= max_hole_px]
        if len(holes) != len(polygon.interiors):
            polygon = shapely.Polygon(polygon.exterior, holes)
        if polygon.area >= min_area_px and polygon.area > 0:
            kept.append(polygon)
    return kept


def clean_mask(
    probability: np.ndarray, threshold: float, config: PostprocessConfig | None, pixel_area_m2: float
) -> np.ndarray:
    """Threshold and clean a whole ``(H, W)`` probability array held in memory (a patch).

    The same steps as a scene's strips (morphology, then objects as polygons), on one strip.

    Returns:
        ``(H, W) uint8`` mask: 1 landslide, 0 background (NaN probability → 0).
    """
    from slidemap.inference.vectorize import mask_to_polygons, rasterize_ids

    mask = threshold_mask(probability, threshold)
    if config is None:
        return mask.astype(np.uint8)
    cleaned = morphology(mask, config) & np.isfinite(probability)
    polygons = filter_objects(mask_to_polygons(cleaned), config, pixel_area_m2)
    height, width = mask.shape
    return (rasterize_ids(polygons, 0, height, width) > 0).astype(np.uint8)
