"""Masks to polygons and back: one polygon per landslide (4-connected component).

Polygons are built in **pixel coordinates** (x = column, y = row, 1 unit = 1 pixel), so
areas in pixels are exact and strips of a scene join seamlessly; :func:`to_map_coordinates`
moves them to the raster's CRS at the end. Per-polygon probability statistics (mean and max;
mean uncertainty when there is one) are accumulated strip by strip (:class:`ZonalStats`); shape and terrain attributes are in
:mod:`slidemap.inference.attributes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from shapely import affinity
from shapely.geometry import shape
from shapely.strtree import STRtree


def mask_to_polygons(mask: np.ndarray, row_off: int = 0, col_off: int = 0) -> list[shapely.Polygon]:
    """Polygons of the 4-connected components of an ``(h, w) bool`` mask.

    Args:
        mask: ``True`` = landslide.
        row_off, col_off: position of ``mask[0, 0]`` in the scene, px.

    Returns:
        Valid polygons (holes included) in scene pixel coordinates.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    shapes = rasterio.features.shapes(
        mask.astype(np.uint8), mask=mask, connectivity=4, transform=Affine.translation(col_off, row_off)
    )
    polygons: list[shapely.Polygon] = []
    for geometry, _ in shapes:
        polygon = shape(geometry)
        if not polygon.is_valid:
            polygon = shapely.make_valid(polygon)
        polygons.extend(explode(polygon))
    return polygons


def explode(geometry: shapely.Geometry) -> list[shapely.Polygon]:
    """The non-empty polygons of a polygon, multipolygon or collection."""
    parts = shapely.get_parts(geometry)
    return [p for p in parts if isinstance(p, shapely.Polygon) and not p.is_empty]


def merge_pieces(pieces: Sequence[shapely.Polygon], cut_rows: Sequence[int]) -> list[shapely.Polygon]:
    """Join pieces of components cut at strip borders (horizontal lines ``y = row``).

    Pieces touching a cut line are unioned; polygons meeting only at a corner stay separate
    (4-connectivity). Others are returned as they are.
    """
    cuts = set(int(r) for r in cut_rows)
    touching: list[shapely.Polygon] = []
    whole: list[shapely.Polygon] = []
    for piece in pieces:
        _, min_y, _, max_y = piece.bounds
        (touching if int(min_y) in cuts or int(max_y) in cuts else whole).append(piece)
    if touching:
        whole.extend(explode(shapely.union_all(touching)))
    return sorted(whole, key=lambda p: (p.bounds[1], p.bounds[0]))


def rasterize_ids(
    polygons: Sequence[shapely.Polygon], row_off: int, height: int, width: int,
    tree: STRtree | None = None,
) -> np.ndarray:
    """``(height, width) int32`` strip with polygon ``i`` burnt as ``i + 1`` (0 = none).

    A pixel belongs to a polygon when its centre is inside; for pixel-edge polygons from
    :func:`mask_to_polygons` that is exactly their pixels.
    """
    out = np.zeros((height, width), dtype=np.int32)
    strip = shapely.box(0, row_off, width, row_off + height)
    indices = tree.query(strip) if tree is not None else np.arange(len(polygons))
    shapes = [(polygons[i], int(i) + 1) for i in sorted(int(j) for j in indices)]
    if shapes:
        rasterio.features.rasterize(
            shapes, out=out, transform=Affine.translation(0, row_off), all_touched=False
        )
    return out


class ZonalStats:
    """Per-polygon sums over strips: valid pixel count, Σ probability, max probability,
    Σ ground area of the polygon's pixels (when strips come with their pixel areas) and,
    when ``uncertainty``, Σ uncertainty."""

    def __init__(self, n: int, ground_areas: bool = False, uncertainty: bool = False) -> None:
        """``n`` polygons; ``ground_areas``: every strip with polygon pixels comes with the
        pixels' areas (then :attr:`area_m2` is each polygon's ground area); ``uncertainty``:
        every strip comes with the members' standard deviation."""
        self.area_m2 = np.zeros(n + 1, dtype=np.float64)
        self.has_areas = ground_areas
        self.count = np.zeros(n + 1, dtype=np.int64)
        self.sum_prob = np.zeros(n + 1, dtype=np.float64)
        self.max_prob = np.full(n + 1, -np.inf, dtype=np.float64)
        self.sum_uncertainty = np.zeros(n + 1, dtype=np.float64) if uncertainty else None

    def add(self, ids: np.ndarray, probability: np.ndarray,
            label_areas_m2: np.ndarray | None = None, uncertainty: np.ndarray | None = None) -> None:
        """Accumulate one strip: ``ids (h, w)`` from :func:`rasterize_ids`, ``probability (h, w)``
        (NaN = nodata), optionally the ground area of each polygon's pixels in the strip,
        ``(n + 1,)`` m² (:meth:`slidemap.io.ground.GroundAreas.label_areas_m2`: every pixel
        of the polygon, filled holes included) and, when tracked, ``uncertainty (h, w)``
        (NaN where the probability is)."""
        size = self.count.size
        if label_areas_m2 is not None:
            self.area_m2 += label_areas_m2
            self.has_areas = True
        valid = (ids > 0) & np.isfinite(probability)
        labels, values = ids[valid], probability[valid].astype(np.float64)
        self.count += np.bincount(labels, minlength=size)
        self.sum_prob += np.bincount(labels, weights=values, minlength=size)
        np.maximum.at(self.max_prob, labels, values)
        if self.sum_uncertainty is not None:
            if uncertainty is None:
                raise ValueError("these statistics track the uncertainty: give it with every strip")
            spread = uncertainty[valid].astype(np.float64)
            self.sum_uncertainty += np.bincount(labels, weights=spread, minlength=size)

    def columns(self) -> dict[str, np.ndarray]:
        """``mean_prob``, ``max_prob`` (and ``mean_uncertainty`` when tracked) per polygon
        (NaN where undefined)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_prob = self.sum_prob[1:] / self.count[1:]
            mean_uncertainty = (None if self.sum_uncertainty is None
                                else self.sum_uncertainty[1:] / self.count[1:])
        max_prob = np.where(np.isfinite(self.max_prob[1:]), self.max_prob[1:], np.nan)
        columns = {"mean_prob": mean_prob, "max_prob": max_prob}
        return columns if mean_uncertainty is None else {**columns, "mean_uncertainty": mean_uncertainty}


def to_map_coordinates(polygons: Sequence[shapely.Polygon], transform: Affine) -> list[shapely.Geometry]:
    """Polygons from pixel coordinates to the raster's CRS via its affine ``transform``."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    matrix = [a, b, d, e, c, f]
    out = []
    for polygon in polygons:
        moved = affinity.affine_transform(polygon, matrix)
        out.append(moved if moved.is_valid else shapely.make_valid(moved))
    return out


def landslide_attributes(
    polygons: Sequence[shapely.Polygon], stats: ZonalStats, pixel_area_m2: float | None = None
) -> dict[str, np.ndarray]:
    """The first attribute columns: ``id``, ``area_m2``, ``mean_prob``, ``max_prob`` (and
    ``mean_uncertainty`` with test-time augmentation or an ensemble).

    ``area_m2`` is the ground area the strips accumulated (:meth:`ZonalStats.add` with pixel
    areas), else the polygon's pixel count times a constant ``pixel_area_m2``.
    """
    if stats.has_areas:
        areas = stats.area_m2[1:].copy()
    elif pixel_area_m2 is not None:
        areas = np.asarray([p.area for p in polygons], dtype=np.float64) * pixel_area_m2
    else:
        raise ValueError("no ground areas: give pixel areas to ZonalStats.add or a pixel_area_m2")
    return {
        "id": np.arange(1, len(polygons) + 1, dtype=np.int64),
        "area_m2": areas,
        **stats.columns(),
    }
