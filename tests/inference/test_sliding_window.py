"""Sliding-window mapping: window-size invariance, nodata, outputs on the input's grid, atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from slidemap.inference.mapping import MappingOptions, predict_scene
from slidemap.inference.scene import SceneSpec
from slidemap.inference.sliding import WindowPlan, blend_weights_1d
from slidemap.io.atomic import TMP_PREFIX
from slidemap.io.vector import read_polygons


def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_blend_weights_are_positive_and_partition_unity_across_the_overlap() -> None:
    plan = WindowPlan.create(1000, 1000, window=64, overlap=32, align=4)
    w = blend_weights_1d(plan).astype(np.float64)
    assert (w > 0).all()
    # The right end of one window and the left end of the next sum to ~1 over the overlap.
    np.testing.assert_allclose(w[-plan.overlap:] + w[: plan.overlap], 1.0, atol=2e-6)


def test_windows_cover_scene_with_margin_and_aligned_starts() -> None:
    plan = WindowPlan.create(150, 97, window=60, overlap=30, align=8)
    assert plan.window % 8 == 0 and plan.overlap % 8 == 0
    for length, starts in ((150, plan.row_starts), (97, plan.col_starts)):
        assert all(s % 8 == 0 for s in starts)
        assert starts[0] <= -plan.margin
        assert starts[-1] + plan.window >= length + plan.margin


def test_two_window_sizes_give_the_same_probabilities(tiny_engine, make_scene, tmp_path) -> None:
    paths = make_scene(size=120, nodata_box=(slice(5, 20), slice(30, 60)))
    scene = SceneSpec(paths["image"], paths["dem"])
    # margin = overlap // 4 = 12 px covers the depth-2 UNet's effective receptive field.
    small = predict_scene(tiny_engine, scene, tmp_path / "w64", MappingOptions(window=64, overlap=48))
    large = predict_scene(tiny_engine, scene, tmp_path / "w256", MappingOptions(window=256, overlap=48))
    assert small["window"]["n_windows"] > 1 and large["window"]["n_windows"] == 1
    p_small = read_band(tmp_path / "w64" / "probability.tif")
    p_large = read_band(tmp_path / "w256" / "probability.tif")
    np.testing.assert_array_equal(np.isnan(p_small), np.isnan(p_large))
    valid = ~np.isnan(p_small)
    assert np.abs(p_small[valid] - p_large[valid]).max() < 1e-4


def test_nodata_stays_nodata_and_outputs_keep_crs_and_transform(tiny_engine, make_scene, tmp_path) -> None:
    paths = make_scene(size=80, nodata_box=(slice(10, 30), slice(0, 25)))
    summary = predict_scene(tiny_engine, SceneSpec(paths["image"], paths["dem"]), tmp_path / "out",
                            MappingOptions(window=64, overlap=32, threshold=0.0))
    with rasterio.open(paths["image"]) as src:
        crs, transform, nodata = src.crs, src.transform, src.read(1) == 0
    for name, expected_nodata in (("probability.tif", None), ("mask.tif", 255)):
        with rasterio.open(tmp_path / "out" / name) as out:
            assert out.crs == crs and out.transform == transform
            band = out.read(1)
            if expected_nodata is None:
                assert np.isnan(out.nodata)
                np.testing.assert_array_equal(np.isnan(band), nodata)
            else:
                assert out.nodata == expected_nodata
                np.testing.assert_array_equal(band == 255, nodata)
                assert set(np.unique(band[~nodata])) <= {0, 1}
    # threshold 0: every valid pixel is a landslide, as one object around the nodata hole.
    assert summary["count"] == 1
    # ground area: at this UTM easting a 10 m grid pixel is 100.08 m² on the ellipsoid
    # (tests/trust/test_true_areas.py checks areas against pyproj's geodesic ones)
    assert summary["total_area_m2"] == pytest.approx((80 * 80 - 20 * 25) * 100.0, rel=1e-3)
    geoms, columns, crs_text = read_polygons(tmp_path / "out" / "landslides.gpkg")
    assert "32633" in crs_text and all(g.is_valid for g in geoms)
    assert set(columns) >= {"area_m2", "mean_prob", "max_prob", "mean_slope_deg"}
    assert not list((tmp_path / "out").glob(f"{TMP_PREFIX}*"))  # atomic writes left nothing behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "landslides.geojson", "landslides.gpkg", "mask.tif", "mask.tif.aux.xml", "probability.tif",
        "summary.json"]


def test_failed_run_leaves_no_partial_output(tiny_engine, make_scene, tmp_path, monkeypatch) -> None:
    import slidemap.inference.sliding as sliding

    paths = make_scene(size=64)
    calls = {"n": 0}
    original = sliding.predict_window

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(sliding, "predict_window", failing)
    with pytest.raises(RuntimeError):
        predict_scene(tiny_engine, SceneSpec(paths["image"], paths["dem"]), tmp_path / "out",
                      MappingOptions(window=32, overlap=16))
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
