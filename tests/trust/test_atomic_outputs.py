"""Outputs appear atomically: a SIGKILLed ``slidemap predict`` leaves no half-written file
under a final name, and running it again completes."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pyogrio.raw
import pytest
import rasterio

from slidemap.inference.mapping import OUTPUT_NAMES
from slidemap.io.atomic import TMP_PREFIX
from tests.trust.conftest import (
    final_files,
    run_cli,
    sigkill,
    start_cli,
    temporaries,
    wait_for,
    write_scene,
)

#: big enough that mapping takes seconds with the tiny model on one core.
KILL_SCENE_PX = 384


def assert_complete(path: Path) -> None:
    """``path`` is a whole, readable output of its kind (fails on a truncated file)."""
    suffix = path.suffix.lower()
    if path.name.endswith(".aux.xml"):  # GDAL's sidecar (category names)
        ElementTree.fromstring(path.read_text())
    elif suffix == ".tif":
        with rasterio.open(path) as src:
            src.read()
    elif suffix == ".json":
        json.loads(path.read_text())
    elif suffix in (".gpkg", ".geojson"):
        pyogrio.raw.read(path)
    else:
        raise AssertionError(f"unexpected output {path.name}")


def test_killed_predict_leaves_no_half_written_output_and_a_rerun_completes(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene", KILL_SCENE_PX)
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem, "--out", out]
    proc = start_cli(argv)
    wait_for(lambda: bool(temporaries(out)), proc, timeout=600, what="a temporary output file")
    sigkill(proc)

    assert temporaries(out), "the kill should have interrupted a write in progress"
    for name in final_files(out):
        assert_complete(out / name)  # whatever has its final name is whole
    assert "probability.tif" not in final_files(out), "killed during the first pass"

    result = run_cli(capsys, argv)
    assert result.code == 0, result.err
    assert set(OUTPUT_NAMES.values()) <= set(final_files(out))
    for name in OUTPUT_NAMES.values():
        assert_complete(out / name)
    with rasterio.open(out / "probability.tif") as src:
        assert np.isfinite(src.read(1)).all()


def test_predict_removes_temporaries_of_a_killed_run(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rerun into the same folder leaves no ``.slidemap-tmp-*`` litter behind."""
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f"{TMP_PREFIX}abc123.tif"
    stale.write_bytes(b"II*\x00 half a probability map")
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out])
    assert result.code == 0, result.err
    assert temporaries(out) == [], "stale temporaries of a killed run were left in the output folder"
