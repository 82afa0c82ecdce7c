"""Fuzzing the file readers: whatever a file holds, only :class:`SlidemapError` escapes, and
what is accepted reads back equal to what was written."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from slidemap.data.l4s import read_image, read_mask
from slidemap.errors import SlidemapError
from slidemap.io.geotiff import inspect_raster, open_raster, read_window
from tests.trust.conftest import write_h5, write_raster

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NUMERIC = st.sampled_from(["u1", "i2", "u2", "i4", "i8", "f2", "f4", "f8"])
OTHER = st.sampled_from(["?", "c8", "S4"])
SPECIAL = st.sampled_from([0.0, 1.0, 255.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e300, -1e300, 3e38])


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """Arrays of rank 0–4, small shapes (empty axes too), any dtype, special values planted."""
    dtype = np.dtype(draw(st.one_of(NUMERIC, OTHER)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    if dtype.kind == "S":
        return np.full(shape, b"ab", dtype=dtype)
    array = draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
                            if dtype.kind != "c" else st.just(1 + 1j)))
    if array.size and dtype.kind == "f" and draw(st.booleans()):
        with np.errstate(over="ignore", invalid="ignore"):
            array.flat[draw(st.integers(0, array.size - 1))] = draw(SPECIAL)
    return array


def _expected_image(array: np.ndarray, n_bands: int | None) -> bool:
    """Whether ``read_image`` must accept ``array``."""
    ok_dtype = array.dtype.kind in "uif"
    shape_ok = array.ndim == 3 and 0 not in array.shape and (n_bands is None or array.shape[2] == n_bands)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = ok_dtype and bool(np.isfinite(array.astype(np.float64)).all()) and bool(
            np.isfinite(array.astype(np.float32)).all())
    return ok_dtype and shape_ok and finite


@FUZZ
@given(array=arrays(), key=st.sampled_from(["img", "mask", "image", "x"]),
       n_bands=st.sampled_from([None, 1, 2, 3]))
def test_read_image_accepts_valid_and_refuses_the_rest_cleanly(array: np.ndarray, key: str,
                                                                n_bands: int | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write_h5(Path(folder) / "image_1.h5", {key: array})
        expect_ok = key == "img" and _expected_image(array, n_bands)
        try:
            image = read_image(path, n_bands=n_bands)
        except SlidemapError as exc:
            assert not expect_ok, f"refused a valid image: {exc}"
            assert str(path) in str(exc)
            return
    assert expect_ok, f"accepted {array.dtype} {array.shape} under {key!r}"
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, array.transpose(2, 0, 1).astype(np.float32))


@FUZZ
@given(array=arrays())
def test_read_mask_accepts_valid_and_refuses_the_rest_cleanly(array: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write_h5(Path(folder) / "mask_1.h5", {"mask": array})
        try:
            mask = read_mask(path)
        except SlidemapError as exc:
            assert str(path) in str(exc)
            return
    squeezed = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
    assert squeezed.ndim == 2 and 0 not in squeezed.shape
    assert set(np.unique(squeezed).tolist()) <= {0, 1, 255}
    np.testing.assert_array_equal(mask, squeezed.astype(np.uint8))


RASTER_DTYPES = st.sampled_from(["uint8", "uint16", "int16", "int32", "float32", "float64"])


@FUZZ
@given(count=st.integers(1, 5), height=st.integers(1, 40), width=st.integers(1, 40),
       dtype=RASTER_DTYPES, crs=st.sampled_from([None, "EPSG:32633", "EPSG:4326"]),
       nodata=st.sampled_from([None, 0.0, -9999.0]), seed=st.integers(0, 2**16))
def test_geotiff_opener_reads_back_or_refuses_cleanly(count: int, height: int, width: int, dtype: str,
                                                       crs: str | None, nodata: float | None,
                                                       seed: int) -> None:
    if nodata is not None and np.dtype(dtype).kind == "u" and nodata < 0:
        nodata = None
    rng = np.random.default_rng(seed)
    array = (rng.uniform(0, 100, (count, height, width))).astype(dtype)
    with tempfile.TemporaryDirectory() as folder:
        path = write_raster(Path(folder) / "scene.tif", array, crs=crs, res=0.001 if crs == "EPSG:4326" else 10.0,
                            origin=(15.0, 38.0) if crs == "EPSG:4326" else (500_000.0, 4_200_000.0),
                            nodata=nodata)
        try:
            info = inspect_raster(path)
        except SlidemapError as exc:
            assert crs is None, f"refused a valid raster: {exc}"
            assert str(path) in str(exc)
            return
        assert crs is not None, "accepted a raster without CRS"
        assert (info.count, info.height, info.width) == (count, height, width)
        with open_raster(path) as ds:
            values, valid = read_window(ds, list(range(1, count + 1)), Window(0, 0, width, height))
            # GDAL writes 4-band uint8 as RGBA: an alpha of 0 marks a pixel transparent (nodata)
            alpha = [i for i, interp in enumerate(ds.colorinterp) if interp == ColorInterp.alpha]
    np.testing.assert_array_equal(values, array.astype(np.float32))
    expected_valid = np.ones((height, width), bool) if nodata is None else np.all(array != nodata, axis=0)
    for band in alpha if nodata is None else ():  # a nodata value shadows the alpha band
        expected_valid &= array[band] != 0
    np.testing.assert_array_equal(valid, expected_valid)
