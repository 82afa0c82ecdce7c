"""All or nothing under real faults: a full disk, a read-only folder, a kill between two
outputs of a set, a bad second input. Whatever fails, no file appears under a final name,
no temporary is left, and the command ends with one line naming the file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from slidemap.errors import OutputError
from slidemap.io.atomic import write_text_atomic
from slidemap.io.cog import CogWriter, RasterLayer
from slidemap.io.geotiff import gdal_failures_raised, inspect_raster
from slidemap.io.outputs import OutputFolder
from tests.trust.conftest import (
    TORCH_ENGINE,
    UTM,
    assert_no_output,
    assert_one_line_error,
    final_files,
    make_split_folder,
    run_cli,
    sigkill,
    start_cli,
    temporaries,
    wait_for,
    write_raster,
    write_scene,
)


def test_predict_onto_a_full_disk_leaves_nothing_and_says_so(
    tmp_path: Path, scene_checkpoint: Path, small_disk, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene", 256, seed=5)
    out = small_disk(48) / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, "--no-postprocess", *TORCH_ENGINE])
    assert_one_line_error(result, "probability.tif", "full")
    assert_no_output(out)


def test_patch_predictions_onto_a_full_disk_leave_nothing(
    tmp_path: Path, l4s_checkpoint: Path, small_disk, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_split_folder(tmp_path / "data", n=6, size=64)
    out = small_disk(48) / "pred"
    result = run_cli(capsys, ["predict", "--checkpoint", l4s_checkpoint, data, "--out", out, *TORCH_ENGINE])
    assert result.code != 0 and "Traceback" not in result.err
    line = result.err.strip().splitlines()[-1]
    assert ": error: " in line and ".h5" in line and "space" in line.lower(), line
    assert_no_output(out)


def test_export_onto_a_full_disk_leaves_nothing(
    tmp_path: Path, l4s_checkpoint: Path, small_disk, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = small_disk(8)
    result = run_cli(capsys, ["export", "--checkpoint", l4s_checkpoint, "--out", disk / "m.onnx"])
    assert_one_line_error(result, "m.onnx", "space")
    assert_no_output(disk)


def test_a_write_gdal_only_reports_fails_instead_of_leaving_a_truncated_file(
    tmp_path: Path, small_disk
) -> None:
    """GDAL's GeoTIFF driver flushes its cache on close and only *prints* the failure
    (``_tiffWriteProc: No space left on device``): the file looked complete."""
    disk = small_disk(200)
    profile = {"driver": "GTiff", "width": 300, "height": 300, "count": 1, "dtype": "float32",
               "crs": UTM, "transform": from_origin(500_000, 4_200_000, 10, 10), "tiled": False}
    rows = np.random.default_rng(0).random((300, 300), dtype=np.float32)
    with pytest.raises(OSError, match="GDAL could not write"), gdal_failures_raised():
        with rasterio.open(disk / "y.tif", "w", **profile) as dst:
            for start in range(0, 300, 10):
                dst.write(rows[start:start + 10], 1, window=Window(0, start, 300, 10))


def test_a_cog_that_does_not_fit_is_one_output_error_and_no_file(tmp_path: Path, small_disk) -> None:
    info = inspect_raster(write_raster(tmp_path / "grid.tif", np.zeros((300, 300), np.uint16)))
    disk = small_disk(200)
    rows = np.random.default_rng(0).random((300, 300), dtype=np.float32)
    with pytest.raises(OutputError, match="y.tif"):
        with CogWriter(disk / "y.tif", info, RasterLayer("float32", np.nan, "probability")) as writer:
            for start in range(0, 300, 10):
                writer.write(rows[start:start + 10], start)
    assert list(disk.iterdir()) == []


def test_predict_into_a_read_only_folder_is_one_line(
    tmp_path: Path, scene_checkpoint: Path, read_only_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    for out in (read_only_folder, read_only_folder / "sub"):
        result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                                  "--out", out, *TORCH_ENGINE])
        assert_one_line_error(result, read_only_folder.name)
        assert any(w in result.err for w in ("Read-only", "Permission denied")), result.err
        assert_no_output(read_only_folder)


def test_a_bad_second_scene_stops_the_run_before_the_first_is_written(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, dem = write_scene(tmp_path / "a")
    second = tmp_path / "b" / "second.tif"
    second.parent.mkdir()
    second.write_text("not a raster")
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, first, second,
                              "--dem", dem, "--out", out, *TORCH_ENGINE])
    assert_one_line_error(result, "second.tif", "cannot read")
    assert_no_output(out)


def test_a_scene_killed_after_its_probability_map_leaves_none_of_its_outputs(
    tmp_path: Path, scene_checkpoint: Path
) -> None:
    """The five outputs are a set: killed while the mask is written (pass 3), the finished
    probability map must not appear alone."""
    image, dem = write_scene(tmp_path / "scene", 1024, seed=5)
    out = tmp_path / "out"
    proc = start_cli(["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem, "--out", out,
                      "--engine", "torch", "--window", "256", "--min-area", "0", "--max-hole-area", "0"])

    def probability_done() -> bool:  # published (staged, or final in an older slidemap)
        return (out / "probability.tif").exists() or any(
            p.name.endswith(("-probability.tif", "mask.tif")) and "scratch-probability" not in p.name
            for p in temporaries(out))

    wait_for(probability_done, proc, timeout=600, what="the probability map")
    sigkill(proc)
    assert final_files(out) == [], "a partial set of outputs appeared under final names"


def test_a_failed_rename_inside_a_set_takes_back_the_ones_already_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real_replace = os.replace
    calls = {"n": 0}

    def replace(src: object, dst: object) -> None:
        if str(dst).endswith(("b.txt",)):
            calls["n"] += 1
            raise OSError(errno.EIO, "Input/output error", str(dst))
        real_replace(src, dst)  # type: ignore[arg-type]

    with OutputFolder(out, "test") as folder:
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(OutputError, match="Input/output error"), folder.output_set():
            write_text_atomic(out / "a.txt", "a")
            write_text_atomic(out / "b.txt", "b")
        monkeypatch.setattr(os, "replace", real_replace)
    assert calls["n"] == 1
    assert final_files(out) == [] and temporaries(out) == [], "a.txt stayed without b.txt"


def test_an_output_whose_record_does_not_fit_on_the_disk_does_not_appear(
    tmp_path: Path, l4s_checkpoint: Path, small_disk, capsys: pytest.CaptureFixture[str]
) -> None:
    """The manifest is written before the rename: a disk with room for the model but not
    for its record leaves no model under the final name."""
    reference = tmp_path / "ref.onnx"
    assert run_cli(capsys, ["export", "--checkpoint", l4s_checkpoint, "--out", reference]).code == 0
    pages = -(-reference.stat().st_size // 4096)
    disk = small_disk(4 * (pages + 1))  # the lock file and the model, not one page more
    result = run_cli(capsys, ["export", "--checkpoint", l4s_checkpoint, "--out", disk / "m.onnx"])
    assert result.code != 0 and "Traceback" not in result.err
    assert "space" in result.err.lower(), result.err
    assert_no_output(disk)
