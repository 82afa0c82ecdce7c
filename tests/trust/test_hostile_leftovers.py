"""Cases found trying to break slidemap that belong to no class above: GDAL's complex integer
rasters (no numpy equivalent), OS-level errors reaching the top level, and output names
slidemap keeps for itself."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
import rasterio
from rasterio.transform import from_origin

from slidemap.cli import main
from slidemap.errors import OutputError
from slidemap.io.atomic import write_text_atomic
from slidemap.io.outputs import LOCK, MANIFEST, OutputFolder
from tests.trust.conftest import UTM, assert_no_output, assert_one_line_error, run_cli, write_scene


def test_a_complex_integer_raster_is_one_line(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``complex_int16`` (GDAL's CInt16, e.g. SAR SLC products) has no numpy dtype: asking
    numpy for it raised a TypeError traceback."""
    _, dem = write_scene(tmp_path / "scene")
    image = tmp_path / "cint16.tif"
    with rasterio.open(image, "w", driver="GTiff", width=16, height=16, count=2, dtype="complex_int16",
                       crs=UTM, transform=from_origin(500_000, 4_200_000, 10, 10)):
        pass
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, "--engine", "torch"])
    assert_one_line_error(result, "cint16.tif", "complex_int16", "real numbers")
    assert_no_output(out)


def test_an_os_error_reaching_the_top_level_is_one_line_naming_the_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import slidemap.cli.models as models_command

    def run(_args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", "/data/locked/scene.tif")

    monkeypatch.setattr(models_command, "run", run)
    code = main(["models"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert err.strip() == "slidemap models: error: /data/locked/scene.tif: Permission denied"
    monkeypatch.setattr(sys, "argv", ["slidemap"])
    with pytest.raises(PermissionError):  # --debug shows the traceback
        main(["--debug", "models", "--debug"])


def test_no_output_may_take_the_name_of_the_lock_or_the_manifest(tmp_path: Path) -> None:
    with OutputFolder(tmp_path / "out", "test") as folder:
        for name in (LOCK, MANIFEST):
            with pytest.raises(OutputError, match="slidemap keeps for itself"):
                write_text_atomic(folder.folder / name, "{}")
