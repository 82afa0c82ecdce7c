"""GeoTIFF input and output: validation, windowed reads, DEM on the image grid.

Every check raises :class:`~slidemap.errors.InputError` naming the file: unreadable, no CRS,
0×0, too few bands, or a DEM that does not overlap the image. A DEM in another CRS or
resolution is fine: it is warped onto the image grid window by window
(:func:`dem_on_image_grid`), never whole. Which band of a scene is which is decided in
:mod:`slidemap.io.scene_source`.

Outputs keep the input's CRS and transform (:func:`output_profile`); they are published as
Cloud-Optimized GeoTIFFs by :mod:`slidemap.io.cog`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from slidemap.errors import InputError
from slidemap.io.ground import GroundAreas, ground_pixel_size_m
from slidemap.io.resources import array_bytes, check_allocation

#: Block size of written GeoTIFFs (pixels); must be a multiple of 16.
BLOCK_PX = 256

#: GDAL block cache while mapping a scene, MB. GDAL's default (5 % of RAM) fills with the
#: blocks of every window read and makes peak memory grow with the scene; each block is
#: used by a few neighbouring windows only, so a small cache costs no speed (docs/mapping.md).
MAPPING_GDAL_CACHE_MB = 128

@dataclass(frozen=True)
class RasterInfo:
    """What slidemap needs to know of a raster, read once on opening.

    Attributes:
        path: the file.
        crs: its coordinate reference system.
        transform: affine pixel → map transform.
        width, height: size in pixels (> 0).
        count: number of bands.
        dtypes: numpy dtype name per band.
        nodata: the nodata value (``None`` when unset; masks may still mark invalid pixels).
        descriptions: band descriptions (``""`` where unset), 1-based band ``i`` at ``[i - 1]``.
        scales: per-band scale factors from the file (1.0 when unset).
        offsets: per-band offsets from the file (0.0 when unset).
    """

    path: Path
    crs: CRS
    transform: rasterio.Affine
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    descriptions: tuple[str, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...] = ()

    @property
    def pixel_size_m(self) -> tuple[float, float]:
        """``(x, y)`` ground distance between neighbouring pixel centres at the raster's
        centre, m: geodesic on the ellipsoid, so right in degrees, feet, Web Mercator at any
        latitude and rotated or sheared grids (:func:`slidemap.io.ground.ground_pixel_size_m`)."""
        return ground_pixel_size_m(self.crs, self.transform, self.width, self.height, self.path)

    @functools.cached_property
    def ground_areas(self) -> GroundAreas:
        """Ground area of any pixel of this grid, m² (:class:`slidemap.io.ground.GroundAreas`)."""
        return GroundAreas(self.crs, self.transform, self.width, self.height, self.path)

    @property
    def pixel_area_m2(self) -> float:
        """Ground area of the centre pixel, m² (pixel areas vary over a raster: areas of
        more than one landslide are measured pixel by pixel, :meth:`area_m2`)."""
        return self.ground_areas.centre_pixel_area_m2

    def area_m2(self, pixels: np.ndarray, row_off: int = 0) -> float:
        """Ground area of the pixels set in ``pixels`` (``(h, w)`` bool, the rows starting
        at scene row ``row_off``, from column 0), m², each pixel measured on the ellipsoid.
        Every area slidemap reports from counted pixels goes through here."""
        return self.ground_areas.mask_area_m2(pixels, row_off, 0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the raster's CRS."""
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return min(left, right), min(bottom, top), max(left, right), max(bottom, top)

    def geo_profile(self) -> dict[str, Any]:
        """``crs``, ``transform``, ``width``, ``height``: what an output on this grid copies."""
        return {"crs": self.crs, "transform": self.transform, "width": self.width, "height": self.height}


@contextlib.contextmanager
def bounded_gdal_cache(megabytes: int = MAPPING_GDAL_CACHE_MB) -> Iterator[None]:
    """GDAL's block cache capped at ``megabytes`` while the block runs, so reading a scene
    window by window keeps memory flat; a ``GDAL_CACHEMAX`` set in the environment wins."""
    if os.environ.get("GDAL_CACHEMAX"):
        yield
        return
    with rasterio.Env(GDAL_CACHEMAX=megabytes * 2**20):
        yield


def is_plain_file(name: str | Path) -> bool:
    """Whether GDAL's ``name`` is a file on disk (not a ``/vsi...`` path or a ``DRIVER:...``
    subdataset name)."""
    text = str(name)
    return not text.startswith("/vsi") and not re.match(r"^[A-Z][A-Z0-9_]+:", text)


@contextlib.contextmanager
def open_raster(path: str | Path, *, label: str | Path | None = None) -> Iterator[DatasetReader]:
    """Open ``path`` (a file, a ``/vsi...`` path or a GDAL subdataset name) for reading;
    any GDAL failure becomes an :class:`InputError` naming ``label`` (default: ``path``)."""
    shown = path if label is None else label
    if is_plain_file(path) and not Path(path).exists():
        raise InputError("raster does not exist", shown)
    try:
        dataset = rasterio.open(path if is_plain_file(path) else str(path))
    except (RasterioError, OSError) as exc:
        raise InputError(f"cannot read as a raster ({exc})", shown) from None
    with dataset:
        yield dataset


def inspect_raster(path: str | Path, *, min_bands: int = 1) -> RasterInfo:
    """Open and validate a raster: readable, georeferenced, non-empty, enough bands.

    Raises:
        InputError: naming ``path`` and the problem.
    """
    path = Path(path)
    with open_raster(path) as ds:
        info = dataset_info(ds, path)
    if info.count < min_bands:
        raise InputError(f"raster has {info.count} band(s); at least {min_bands} needed", path)
    return info


def dataset_info(ds: DatasetReader, path: str | Path) -> RasterInfo:
    """Validate an open dataset (georeferenced, non-empty, real-valued) and describe it.

    Raises:
        InputError: naming ``path`` and the problem.
    """
    path = Path(path)
    if ds.width <= 0 or ds.height <= 0:
        raise InputError(f"raster is empty ({ds.width}×{ds.height} px)", path)
    if ds.crs is None:
        raise InputError(
            "raster has no coordinate reference system; assign one (gdal_edit.py -a_srs EPSG:...)",
            path,
        )
    if ds.transform.is_identity:
        raise InputError("raster has no geotransform (pixel → map coordinates)", path)
    unsupported = sorted({d for d in ds.dtypes if not _is_real_dtype(d)})
    if unsupported:
        raise InputError(
            f"raster has {', '.join(unsupported)} pixels; expected real numbers "
            "(integer or floating-point bands)",
            path,
        )
    # GDAL decompresses whole blocks: a header may declare one larger than memory
    rows, cols = max(ds.block_shapes, key=lambda shape: shape[0] * shape[1])
    itemsize = max(np.dtype(d).itemsize for d in ds.dtypes)
    check_allocation(array_bytes((rows, cols), itemsize), f"a {rows}×{cols} px block", path)
    return RasterInfo(
        path=path,
        crs=ds.crs,
        transform=ds.transform,
        width=ds.width,
        height=ds.height,
        count=ds.count,
        dtypes=tuple(ds.dtypes),
        nodata=ds.nodata,
        descriptions=tuple(d or "" for d in ds.descriptions),
        scales=tuple(float(s) if s else 1.0 for s in ds.scales),
        offsets=tuple(float(o) if o else 0.0 for o in ds.offsets),
    )


def _is_real_dtype(name: str) -> bool:
    """Whether a rasterio dtype name is a real number type (GDAL's complex types, e.g.
    ``complex_int16``, have no numpy equivalent and are not)."""
    try:
        return np.dtype(name).kind in "biuf"
    except TypeError:
        return False


def check_overlap(image: RasterInfo, dem: RasterInfo) -> None:
    """Refuse a DEM whose footprint does not intersect the image's (after reprojection)."""
    left, bottom, right, top = transform_bounds(dem.crs, image.crs, *dem.bounds, densify_pts=21)
    i_left, i_bottom, i_right, i_top = image.bounds
    if right <= i_left or left >= i_right or top <= i_bottom or bottom >= i_top:
        raise InputError(
            f"DEM does not overlap the image {image.path.name} (DEM bounds in the image CRS: "
            f"{left:.1f}, {bottom:.1f}, {right:.1f}, {top:.1f}; image: {i_left:.1f}, {i_bottom:.1f}, "
            f"{i_right:.1f}, {i_top:.1f})",
            dem.path,
        )


@contextlib.contextmanager
def dem_on_image_grid(
    dem_path: str | Path, image: RasterInfo, resampling: Resampling = Resampling.bilinear
) -> Iterator[WarpedVRT]:
    """A virtual raster of band 1 of ``dem_path`` on ``image``'s grid (CRS, transform, size).

    Reads from it warp only the window asked for, so the DEM is never whole in memory.
    Pixels outside the DEM or on its nodata read as NaN and are masked (``read_masks``).

    Raises:
        InputError: the DEM is invalid or does not overlap the image.
    """
    dem = inspect_raster(dem_path)
    check_overlap(image, dem)
    with open_raster(dem.path) as src:
        src_nodata = src.nodata if src.nodata is not None else None
        with WarpedVRT(
            src,
            crs=image.crs,
            transform=image.transform,
            width=image.width,
            height=image.height,
            resampling=resampling,
            src_nodata=src_nodata,
            nodata=np.nan,
            dtype="float32",
        ) as vrt:
            yield vrt


def read_window(
    dataset: DatasetReader | WarpedVRT, indexes: list[int], window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """Read bands ``indexes`` (1-based) in ``window`` (inside the raster).

    Returns:
        ``(values (len(indexes), h, w) float32, valid (h, w) bool)``: a pixel is valid when
        every band's mask says so (nodata value, alpha or internal mask) and is finite.
    """
    source = getattr(dataset, "src_dataset", dataset)  # a WarpedVRT names its source file
    try:
        values = dataset.read(indexes, window=window, out_dtype="float32")
        masks = dataset.read_masks(indexes, window=window)
    except (RasterioError, OSError) as exc:
        raise InputError(
            f"cannot read pixels of window {window!r} (damaged or truncated file?): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            source.name,
        ) from None
    valid = np.all(masks > 0, axis=0) & np.all(np.isfinite(values), axis=0)
    return values, valid


def output_profile(
    info: RasterInfo, dtype: str, nodata: float | int, count: int = 1
) -> dict[str, Any]:
    """Profile of a tiled (when at least one block in each direction), DEFLATE-compressed
    GeoTIFF on ``info``'s grid."""
    block = BLOCK_PX
    tiled = info.width >= block and info.height >= block
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 3 if np.dtype(dtype).kind == "f" else 2,
        "tiled": tiled,
        "BIGTIFF": "IF_SAFER",
        **info.geo_profile(),
    }
    if tiled:
        profile.update(blockxsize=block, blockysize=block)
    return profile


class _GdalFailures(logging.Handler):
    """Collects the errors GDAL signals without failing the call (rasterio logs them)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_GDAL_SIGNALLED):
            self.messages.append(message)


#: how rasterio logs an error GDAL signalled through its error handler (``rasterio._env``).
_GDAL_SIGNALLED = "GDAL signalled an error"


@contextlib.contextmanager
def gdal_failures_raised() -> Iterator[None]:
    """Raise :class:`OSError` when GDAL signals an error inside the block and returns anyway.

    GDAL's GeoTIFF driver may only *report* a failed write (``_tiffWriteProc: No space
    left on device`` while flushing its cache on close) and let the call succeed, leaving a
    truncated file; wrap every call that writes an output in this.
    """
    logger = logging.getLogger("rasterio._env")
    handler = _GdalFailures()
    level = logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    def failure() -> OSError:
        return OSError(errno.EIO, "GDAL could not write: " + handler.messages[0].split("msg=", 1)[-1])

    try:
        yield
    except (RasterioError, OSError):
        if handler.messages:  # GDAL's own words say more than "Write failed"
            raise failure() from None
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if handler.messages:
        raise failure()
