"""``slidemap demo`` end to end at a tiny size: Table 1 of the four models, the mapped scene
and its figure drawn from the image's red, green and blue bands, the report that lists them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

from slidemap.cli import main
from slidemap.io.vector import read_polygons
from slidemap.workflows import demo

TINY = ["--set", "base.trainer.max_epochs=1", "--set", "synthetic_patches=24",
        "--set", "base.model.options.base_channels=4", "--scene-size", "256"]


def test_demo_writes_table_scene_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: dict[str, list[int]] = {}
    original = demo.plot_scene_map

    def spy(*args, rgb_bands, **kwargs):  # type: ignore[no-untyped-def]
        drawn["rgb"] = list(rgb_bands)
        return original(*args, rgb_bands=rgb_bands, **kwargs)

    monkeypatch.setattr(demo, "plot_scene_map", spy)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0

    rows = [line for line in (out / "table1.md").read_text().splitlines()[2:] if line.startswith("|")]
    assert [row.split("|")[1].strip() for row in rows] == ["UNet", "UNet-CBAM", "SegNet", "DP-FCN"]

    with rasterio.open(out / "scene" / "input" / "image.tif") as image:
        names = list(image.descriptions)
    assert drawn["rgb"] == [names.index(b) + 1 for b in ("B4", "B3", "B2")]  # red, green, blue

    summary = json.loads((out / "scene" / "summary.json").read_text())
    geometries, _, _ = read_polygons(out / "scene" / "landslides.gpkg")
    assert summary["count"] == len(geometries)
    report = (out / "report.md").read_text()
    assert "scene_map.png" in report and (out / "scene_map.png").stat().st_size > 0
    assert f"Scene: {summary['count']} landslides" in report
