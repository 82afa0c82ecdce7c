"""Catalogue of bad GeoTIFF scenes and DEMs, through ``slidemap predict``.

Every case maps a 64 px scene with a tiny checkpoint (red + NIR from the image, slope and
elevation from a DEM); a bad image or DEM must stop the run with one stderr line naming that
file, and leave no ``probability.tif``, ``mask.tif`` or polygons behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

from tests.trust.conftest import (
    ORIGIN,
    UTM,
    assert_no_output,
    assert_one_line_error,
    run_cli,
    scene_dem,
    scene_image,
    set_tiff_tag,
    write_raster,
    write_scene,
)

#: TIFF tag of the image width.
IMAGE_WIDTH_TAG = 256


@dataclass(frozen=True)
class Case:
    """``make(folder, image, dem) -> (image, dem, culprit)`` spoils one input of a valid scene."""

    id: str
    make: Callable[[Path, Path, Path], tuple[Path, Path | None, Path]]
    words: tuple[str, ...]
    extra: tuple[str, ...] = ()


def _image(array: np.ndarray | None = None, **kwargs: object) -> Callable[[Path, Path, Path], tuple[Path, Path, Path]]:
    def make(folder: Path, image: Path, dem: Path) -> tuple[Path, Path, Path]:
        bad = write_raster(folder / "bad" / "image.tif",
                           scene_image() if array is None else array, **kwargs)  # type: ignore[arg-type]
        return bad, dem, bad

    return make


def _dem(array: np.ndarray | None = None, **kwargs: object) -> Callable[[Path, Path, Path], tuple[Path, Path, Path]]:
    def make(folder: Path, image: Path, dem: Path) -> tuple[Path, Path, Path]:
        bad = write_raster(folder / "bad" / "dem.tif",
                           scene_dem() if array is None else array, **kwargs)  # type: ignore[arg-type]
        return image, bad, bad

    return make


def _spoil(spoil: Callable[[Path], object], dem: bool = False) -> Callable[[Path, Path, Path], tuple[Path, Path, Path]]:
    """Spoil the valid image (or, with ``dem``, the valid DEM) in place."""
    def make(folder: Path, image: Path, dem_path: Path) -> tuple[Path, Path, Path]:
        culprit = dem_path if dem else image
        spoil(culprit)
        return image, dem_path, culprit

    return make


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _garble_pixels(path: Path) -> None:
    """Rewrite ``path`` DEFLATE-compressed, then garble its compressed pixel data: the header
    is fine, so the damage shows only when the pixels are read."""
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    with rasterio.open(path, "w", **{**profile, "compress": "deflate"}) as dst:
        dst.write(data)
    with rasterio.open(path) as src:  # where GDAL put the first compressed block
        offset = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    assert size > 16, "expected a compressed block worth garbling"
    raw = bytearray(path.read_bytes())
    raw[offset : offset + size] = b"\xff" * size
    path.write_bytes(bytes(raw))


def _zero_width(path: Path) -> None:
    set_tiff_tag(path, IMAGE_WIDTH_TAG, 0)


def _bad_ifd_offset(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4:8] = (0xFFFFFF00).to_bytes(4, "little")  # first IFD far beyond the end of the file
    path.write_bytes(bytes(data))


def _no_dem_needed_but_missing(folder: Path, image: Path, dem: Path) -> tuple[Path, None, Path]:
    return image, None, image


RASTER_CASES: list[Case] = [
    Case("image does not exist", lambda f, i, d: (f / "gone.tif", d, f / "gone.tif"), ("does not exist",)),
    Case("image zero bytes", _spoil(lambda p: p.write_bytes(b"")), ("cannot read",)),
    Case("image is a text file", _spoil(lambda p: p.write_text("B4,B8\n1,2\n")), ("cannot read",)),
    Case("image truncated", _spoil(_truncate), ("read",)),
    Case("image pixel data garbled", _spoil(_garble_pixels), ("read",)),
    Case("image claims 0 px width", _spoil(_zero_width), ("cannot read",)),
    Case("image header points past the end", _spoil(_bad_ifd_offset), ("cannot read",)),
    Case("image without CRS", _image(crs=None, descriptions=("B4", "B8")), ("coordinate reference system",)),
    Case("image without geotransform", _image(crs=None, georeferenced=False, descriptions=("B4", "B8")),
         ("coordinate reference system",)),
    Case("image with 3 unnamed bands", _image(np.zeros((3, 64, 64), np.uint16)), ("cannot find band",)),
    Case("image lacks B8", _image(scene_image()[:1], descriptions=("B4",)), ("cannot find band", "B8")),
    Case("image of complex values", _image(scene_image().astype(np.complex64), descriptions=("B4", "B8")),
         ("complex",)),
    Case("image, no DEM for slope and DEM", _no_dem_needed_but_missing, ("--dem",)),
    Case("--bands beyond the band count", _spoil(lambda p: None), ("bands 1..2",),
         extra=("--bands", "B4=1,B8=7")),
    Case("DEM zero bytes", _spoil(lambda p: p.write_bytes(b""), dem=True), ("cannot read",)),
    Case("DEM truncated", _spoil(_truncate, dem=True), ("read",)),
    Case("DEM pixel data garbled", _spoil(_garble_pixels, dem=True), ("read",)),
    Case("DEM without CRS", _dem(crs=None), ("coordinate reference system",)),
    Case("DEM not overlapping the image", _dem(origin=(ORIGIN[0] + 50_000, ORIGIN[1])), ("does not overlap",)),
]


@pytest.mark.parametrize("case", RASTER_CASES, ids=lambda c: c.id)
def test_predict_refuses_bad_raster(case: Case, tmp_path: Path, scene_checkpoint: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    image, dem = write_scene(tmp_path / "scene")
    image, dem_arg, culprit = case.make(tmp_path, image, dem)
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", scene_checkpoint, image, "--out", out, *case.extra]
    if dem_arg is not None:
        argv += ["--dem", dem_arg]
    result = run_cli(capsys, argv)
    assert_one_line_error(result, culprit, *case.words)
    assert_no_output(out)


def test_dem_in_another_crs_is_reprojected(tmp_path: Path, scene_checkpoint: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A geographic DEM covering a UTM scene is warped onto the scene grid and accepted;
    the outputs keep the scene's CRS."""
    image, _ = write_scene(tmp_path / "scene")
    west, south, east, north = transform_bounds(UTM, "EPSG:4326", ORIGIN[0], ORIGIN[1] - 640,
                                                ORIGIN[0] + 640, ORIGIN[1])
    res = 0.0001  # about 9 m
    size = int(np.ceil(max(east - west, north - south) / res)) + 4
    dem = write_raster(tmp_path / "dem_wgs84.tif", scene_dem(size), crs="EPSG:4326", res=res,
                       origin=(west - 2 * res, north + 2 * res))
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", tmp_path / "out"])
    assert result.code == 0, result.err
    with rasterio.open(tmp_path / "out" / "probability.tif") as src, rasterio.open(image) as ref:
        assert src.crs == ref.crs and src.transform == ref.transform
        probability = src.read(1)
    assert np.isfinite(probability).all(), "the reprojected DEM should cover every pixel"
