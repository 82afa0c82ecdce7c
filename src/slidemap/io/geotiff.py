"""GeoTIFF input and output: validation, band mapping, windowed reads, DEM on the image grid.

Every check raises :class:`~slidemap.errors.InputError` naming the file: unreadable, no CRS,
0×0, too few bands, bands that cannot be mapped to the checkpoint's band set, or a DEM
that does not overlap the image. A DEM in another CRS or resolution is fine: it is warped
onto the image grid window by window (:func:`dem_on_image_grid`), never whole.

Outputs are tiled, compressed GeoTIFFs with the input's CRS and transform, written under a
temporary name and renamed when complete (:class:`GeoTiffWriter`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from slidemap.bands import Band, BandSet
from slidemap.errors import InputError
from slidemap.io.areas import GroundAreas, ground_pixel_size_m
from slidemap.io.atomic import atomic_path
from slidemap.io.resources import array_bytes, check_allocation

#: Block size of written GeoTIFFs (pixels); must be a multiple of 16.
BLOCK_PX = 256
#: Digital numbers per unit reflectance assumed for integer optical rasters without a
#: band scale (Sentinel-2 L2A/L1C products store reflectance × 10000 as uint16).
SENTINEL2_DN_PER_REFLECTANCE = 10000.0

#: GDAL block cache while mapping a scene, MB. GDAL's default (5 % of RAM) fills with the
#: blocks of every window read and makes peak memory grow with the scene; each block is
#: used by a few neighbouring windows only, so a small cache costs no speed (docs/mapping.md).
MAPPING_GDAL_CACHE_MB = 128

BandSource = tuple[Literal["image"], int] | tuple[Literal["dem"], None] | tuple[Literal["slope"], None]


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

    @property
    def pixel_size_m(self) -> tuple[float, float]:
        """``(x, y)`` ground distance between neighbouring pixel centres at the raster's
        centre, m: geodesic on the ellipsoid, so right in degrees, feet, Web Mercator at any
        latitude and rotated or sheared grids (:func:`slidemap.io.areas.ground_pixel_size_m`)."""
        return ground_pixel_size_m(self.crs, self.transform, self.width, self.height)

    def ground_areas(self) -> GroundAreas:
        """Ground area of any pixel of this grid, m² (:class:`slidemap.io.areas.GroundAreas`)."""
        return GroundAreas(self.crs, self.transform, self.width, self.height)

    @property
    def pixel_area_m2(self) -> float:
        """Ground area of the centre pixel, m² (pixel areas vary over a raster: use
        :meth:`ground_areas` to measure anything larger than one landslide)."""
        return self.ground_areas().centre_pixel_area_m2

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


@contextlib.contextmanager
def open_raster(path: str | Path) -> Iterator[DatasetReader]:
    """Open ``path`` for reading; any GDAL failure becomes an :class:`InputError` naming it."""
    path = Path(path)
    if not path.exists():
        raise InputError("raster does not exist", path)
    try:
        dataset = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise InputError(f"cannot read as a raster ({exc})", path) from None
    with dataset:
        yield dataset


def inspect_raster(path: str | Path, *, min_bands: int = 1) -> RasterInfo:
    """Open and validate a raster: readable, georeferenced, non-empty, enough bands.

    Raises:
        InputError: naming ``path`` and the problem.
    """
    path = Path(path)
    with open_raster(path) as ds:
        if ds.width <= 0 or ds.height <= 0:
            raise InputError(f"raster is empty ({ds.width}×{ds.height} px)", path)
        if ds.crs is None:
            raise InputError(
                "raster has no coordinate reference system; assign one (gdal_edit.py -a_srs EPSG:...)",
                path,
            )
        if ds.transform.is_identity:
            raise InputError("raster has no geotransform (pixel → map coordinates)", path)
        if ds.count < min_bands:
            raise InputError(f"raster has {ds.count} band(s); at least {min_bands} needed", path)
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
        )


def _is_real_dtype(name: str) -> bool:
    """Whether a rasterio dtype name is a real number type (GDAL's complex types, e.g.
    ``complex_int16``, have no numpy equivalent and are not)."""
    try:
        return np.dtype(name).kind in "biuf"
    except TypeError:
        return False


_MAPPING_ITEM = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d+)\s*$")


def parse_band_mapping(text: str) -> dict[str, int]:
    """Parse ``"B2=2,B3=3,B4=4"`` into ``{"B2": 2, ...}`` (1-based raster band numbers).

    Raises:
        InputError: malformed item or a band named twice.
    """
    mapping: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _MAPPING_ITEM.match(item)
        if not match:
            raise InputError(f"--bands item {item!r} is not NAME=NUMBER (e.g. B8=8)")
        name, number = match.group(1), int(match.group(2))
        if name in mapping:
            raise InputError(f"--bands names {name!r} twice")
        mapping[name] = number
    if not mapping:
        raise InputError(f"--bands {text!r} maps no band; expected e.g. B2=2,B3=3,B4=4")
    return mapping


def _explicit_source(band: Band, mapping: Mapping[str, int], info: RasterInfo) -> int | None:
    for key, number in mapping.items():
        if band.matches(key):
            if not 1 <= number <= info.count:
                raise InputError(
                    f"--bands maps {key} to band {number}, but the raster has bands 1..{info.count}",
                    info.path,
                )
            return number
    return None


def _positional_sources(band_set: BandSet, count: int, have_dem: bool) -> list[BandSource | None]:
    """Bands of an undescribed raster taken in set order: all of them when the counts match,
    or all but the terrain bands (elevation, slope) when a separate DEM supplies those."""
    terrain = [b.role in ("dem", "dsm", "slope") for b in band_set.bands]
    take = [True] * len(band_set) if count == len(band_set) else [not t for t in terrain]
    if sum(take) != count or (count != len(band_set) and not have_dem):
        return [None] * len(band_set)
    numbers = iter(range(1, count + 1))
    return [("image", next(numbers)) if t else None for t in take]


def map_bands(
    band_set: BandSet,
    info: RasterInfo,
    mapping: Mapping[str, int] | None = None,
    *,
    have_dem: bool = False,
) -> tuple[BandSource, ...]:
    """Where each band of ``band_set`` comes from, in band-set order.

    A band is found, in this order: in the explicit ``mapping`` (``--bands``; keys are band
    names, roles or aliases); by the raster's band descriptions (matched against name, role
    and aliases, case-insensitive); an elevation band from the separate DEM when
    ``have_dem``; a ``slope`` band computed from the DEM (image or separate). Without
    descriptions or a mapping, a raster with exactly as many bands as the set is taken in
    set order.

    Returns:
        One :data:`BandSource` per band: ``("image", n)`` (1-based), ``("dem", None)`` or
        ``("slope", None)``.

    Raises:
        InputError: a band cannot be found; the message lists what the raster offers.
    """
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if not any(b.matches(k) for b in band_set.bands)]
    if unknown:
        raise InputError(
            f"--bands names {', '.join(unknown)}, which band set {band_set.name!r} "
            f"({', '.join(band_set.names)}) does not have"
        )
    sources: list[BandSource | None] = []
    for band in band_set.bands:
        number = _explicit_source(band, mapping, info)
        if number is None:
            number = next(
                (i + 1 for i, d in enumerate(info.descriptions) if d and band.matches(d)), None
            )
        sources.append(("image", number) if number is not None else None)
    if not mapping and not any(info.descriptions):
        sources = _positional_sources(band_set, info.count, have_dem)
    elevation_in_image = any(
        src is not None and band.role in ("dem", "dsm")
        for band, src in zip(band_set.bands, sources, strict=True)
    )
    resolved: list[BandSource] = []
    missing: list[str] = []
    for band, src in zip(band_set.bands, sources, strict=True):
        if src is not None:
            resolved.append(src)
        elif band.role in ("dem", "dsm") and have_dem:
            resolved.append(("dem", None))
        elif band.role == "slope" and (have_dem or elevation_in_image):
            resolved.append(("slope", None))
        else:
            missing.append(band.name)
    if missing:
        offered = ", ".join(f"{i + 1}={d or '?'}" for i, d in enumerate(info.descriptions))
        hint = " or pass --dem DEM.tif" if any(
            b.role in ("dem", "dsm", "slope") for b in band_set.bands if b.name in missing
        ) else ""
        raise InputError(
            f"cannot find band(s) {', '.join(missing)} of band set {band_set.name!r}; the raster's "
            f"bands are {offered}; set band descriptions or pass --bands NAME=NUMBER,...{hint}",
            info.path,
        )
    return tuple(resolved)


def physical_per_raw(band: Band, info: RasterInfo, number: int) -> float:
    """Factor from raw raster values of 1-based band ``number`` to ``band``'s physical units.

    Reflectance bands: the file's band scale when it sets one, else ``1 / 10000`` for
    integer rasters (Sentinel-2 convention), else 1 (a float raster is taken to hold
    reflectance already). Other units (metres, degrees, DN) are taken as they are stored.
    """
    if band.unit != "reflectance":
        return info.scales[number - 1]
    if info.scales[number - 1] != 1.0:
        return info.scales[number - 1]
    if np.issubdtype(np.dtype(info.dtypes[number - 1]), np.integer):
        return 1.0 / SENTINEL2_DN_PER_REFLECTANCE
    return 1.0


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
    """Profile of a tiled, DEFLATE-compressed GeoTIFF on ``info``'s grid."""
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


class GeoTiffWriter:
    """Write a single-band GeoTIFF block by block; it appears under its name only when closed
    without error (atomic: temporary name in the same folder, then rename). An error GDAL
    only signals (a full disk while flushing) fails the write like one it raises.

    Example::

        with GeoTiffWriter(out / "probability.tif", info, "float32", np.nan) as writer:
            writer.write(block, row_off=0, col_off=0)
    """

    def __init__(
        self, path: str | Path, info: RasterInfo, dtype: str, nodata: float | int, *,
        description: str = "",
    ) -> None:
        self.path = Path(path)
        self._profile = output_profile(info, dtype, nodata)
        self._description = description
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._dataset: DatasetWriter | None = None

    def __enter__(self) -> GeoTiffWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            with gdal_failures_raised():
                self._dataset = rasterio.open(tmp, "w", **self._profile)
                if self._description:
                    self._dataset.set_band_description(1, self._description)
        except BaseException as exc:
            if self._dataset is not None:
                with contextlib.suppress(Exception):
                    self._dataset.close()
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def write(self, block: np.ndarray, row_off: int, col_off: int = 0) -> None:
        """Write ``block (h, w)`` with its top-left pixel at ``(row_off, col_off)``."""
        assert self._dataset is not None, "use GeoTiffWriter as a context manager"
        height, width = block.shape
        window = Window(col_off, row_off, width, height)
        with gdal_failures_raised():
            self._dataset.write(block.astype(self._profile["dtype"], copy=False), 1, window=window)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._dataset is not None and self._atomic is not None
        try:
            with gdal_failures_raised():
                self._dataset.close()
        except BaseException as close_error:
            if exc_type is None:  # the close failed (a full disk): the file is incomplete
                exc_type, exc, tb = type(close_error), close_error, close_error.__traceback__
                if not self._atomic.__exit__(exc_type, exc, tb):
                    raise
                return
        self._atomic.__exit__(exc_type, exc, tb)


def write_geotiff(
    path: str | Path, array: np.ndarray, info: RasterInfo, nodata: float | int, description: str = ""
) -> Path:
    """Write a whole ``(H, W)`` array on ``info``'s grid, atomically (small rasters, tests)."""
    with GeoTiffWriter(path, info, array.dtype.name, nodata, description=description) as writer:
        writer.write(array, 0, 0)
    return Path(path)
