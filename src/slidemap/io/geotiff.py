"""GeoTIFF input and output: validation, band mapping, windowed reads, DEM on the image grid.

Every check raises :class:`~slidemap.errors.InputError` naming the file: unreadable, no CRS,
0×0, too few bands, bands that cannot be mapped to the checkpoint's band set, or a DEM
that does not overlap the image. A DEM in another CRS or resolution is fine: it is warped
onto the image grid window by window (:func:`dem_on_image_grid`), never whole.

Outputs keep the input's CRS and transform (:func:`output_profile`); they are published as
Cloud-Optimized GeoTIFFs by :mod:`slidemap.io.cog`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from slidemap.bands import Band, BandSet
from slidemap.errors import InputError

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
        """``(x, y)`` pixel size in metres; for a geographic CRS, at the raster's centre."""
        res_x, res_y = abs(self.transform.a), abs(self.transform.e)
        if self.crs.is_geographic:
            centre_lat = (self.transform @ (self.width / 2, self.height / 2))[1]
            metres_per_degree = 111_320.0
            return (res_x * metres_per_degree * math.cos(math.radians(centre_lat)),
                    res_y * metres_per_degree)
        factor = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
        return res_x * factor, res_y * factor

    @property
    def pixel_area_m2(self) -> float:
        """Area of one pixel, m²."""
        size_x, size_y = self.pixel_size_m
        return size_x * size_y

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
        unsupported = sorted({d for d in ds.dtypes if np.dtype(d).kind not in "biuf"})
        if unsupported:
            raise InputError(
                f"raster has {', '.join(unsupported)} pixels; expected real numbers "
                "(integer or floating-point bands)",
                path,
            )
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
