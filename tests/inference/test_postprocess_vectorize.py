"""Post-processing and polygons: areas from a hand-made mask, small blobs removed, strips joined."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from slidemap.inference.postprocess import PostprocessConfig, clean_mask, filter_objects, morphology
from slidemap.inference.vectorize import (
    ZonalStats,
    landslide_attributes,
    mask_to_polygons,
    merge_pieces,
    rasterize_ids,
    to_map_coordinates,
)

NONE = PostprocessConfig(0, 0, 0.0, 0.0)


def test_a_10_by_20_pixel_rectangle_at_10m_is_one_valid_20000_m2_polygon() -> None:
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:15, 10:30] = True
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 1 and polygons[0].is_valid
    probability = np.where(mask, 0.9, 0.1).astype(np.float32)
    probability[5, 10] = 0.7
    stats = ZonalStats(1)
    stats.add(rasterize_ids(polygons, 0, 40, 50), probability)
    attributes = landslide_attributes(polygons, stats, pixel_area_m2=100.0)
    assert attributes["area_m2"][0] == pytest.approx(20_000.0)
    assert attributes["max_prob"][0] == pytest.approx(0.9)
    assert attributes["mean_prob"][0] == pytest.approx((199 * 0.9 + 0.7) / 200)
    transform = Affine(10.0, 0, 500_000.0, 0, -10.0, 4_200_000.0)
    (in_map,) = to_map_coordinates(polygons, transform)
    assert in_map.area == pytest.approx(20_000.0)
    assert in_map.bounds == pytest.approx((500_100.0, 4_199_850.0, 500_300.0, 4_199_950.0))


def test_objects_below_the_minimum_area_are_removed_and_larger_ones_kept() -> None:
    probability = np.zeros((60, 60), dtype=np.float32)
    probability[5:7, 5:7] = 0.9      # 4 px = 400 m² < 500 m²
    probability[30:40, 30:40] = 0.9  # 100 px, with a 2-px hole (200 m² < 500 m²: filled)
    probability[34, 34:36] = 0.0
    mask = clean_mask(probability, 0.5, PostprocessConfig(0, 0, 500.0, 500.0), pixel_area_m2=100.0)
    assert mask[5:7, 5:7].sum() == 0
    assert mask[30:40, 30:40].all()  # kept, hole filled
    assert mask.sum() == 100


def test_opening_removes_specks_and_closing_keeps_objects_at_the_array_edge() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[0:6, 0:6] = True  # touches the border: must not shrink
    mask[12, 12] = True    # a speck
    out = morphology(mask, PostprocessConfig(1, 1, 0.0, 0.0))
    assert out[0:6, 0:6].sum() >= 32 and out[0, 0] == out[0, 3] == 1
    assert not out[12, 12]


def test_pieces_cut_at_strip_borders_join_into_one_object_but_corners_do_not() -> None:
    mask = np.zeros((40, 30), dtype=bool)
    mask[5:25, 5:10] = True    # crosses the cut at row 16
    mask[10:16, 20:22] = True  # ends at the cut...
    mask[16:20, 22:24] = True  # ...and this one only touches it diagonally
    pieces = mask_to_polygons(mask[:16]) + mask_to_polygons(mask[16:], row_off=16)
    merged = merge_pieces(pieces, [16])
    whole = mask_to_polygons(mask)
    assert len(merged) == len(whole) == 3
    assert sorted(p.area for p in merged) == sorted(p.area for p in whole)
    assert all(isinstance(p, shapely.Polygon) and p.is_valid for p in merged)


def test_filter_objects_thresholds_are_in_square_metres() -> None:
    square = shapely.box(0, 0, 3, 3)  # 9 px
    assert filter_objects([square], PostprocessConfig(0, 0, 900.0, 0.0), 100.0) == [square]
    assert filter_objects([square], PostprocessConfig(0, 0, 901.0, 0.0), 100.0) == []
    assert clean_mask(np.full((4, 4), 0.2), 0.5, NONE, 100.0).sum() == 0
