"""A scene as named bands: what every scene input format is turned into.

A :class:`SceneSource` lists the bands an input offers (:class:`SourceBand`: which file or
GDAL subdataset, which band of it, how its raw values become physical units, its nodata),
the grid they are all read on (the finest grid of the scene) and what is known of the
product (processing level and baseline). The formats that build one (a Sentinel-2 SAFE
product, a folder of per-band files, a STAC item, a multi-band raster) are registered in
:mod:`slidemap.io.scene_formats`; :func:`map_bands` then picks, for each band a model
needs, the source band that holds it, and :mod:`slidemap.io.band_stack` reads them window
by window.

Radiometry: ``physical = raw × scale + offset``. A source band's scale and offset are what
its metadata declares (GeoTIFF/VRT scale and offset, the product's quantification value and
``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET``, STAC ``raster:bands``); when nothing is declared,
:func:`physical_scale_offset` applies the convention of the band's unit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rasterio.enums import Resampling

from slidemap.bands import ELEVATION_ROLES, SENTINEL2_DN_PER_REFLECTANCE, Band, BandSet
from slidemap.errors import InputError
from slidemap.io.geotiff import RasterInfo

#: How bands are brought onto the scene's grid, by what they hold. Reflectance from a
#: coarser grid (Sentinel-2's 20 m and 60 m bands) is replicated by nearest neighbour, as
#: in the Landslide4Sense files the models learn from: there 46–50 % of horizontally
#: adjacent pixels of the 20 m bands and 81–87 % of the 60 m bands are equal (10 m bands:
#: ~10 %), the signature of nearest-neighbour upsampling; bilinear would show the model
#: smoother bands than it was trained on. Categorical bands (the scene classification, a
#: cloud mask) take the class of the nearest pixel, as their values cannot be averaged;
#: elevation is a continuous surface whose slope is computed, so it is interpolated
#: bilinearly (nearest would make terraces with false slopes).
RESAMPLING: dict[str, Resampling] = {
    "reflectance": Resampling.nearest,
    "categorical": Resampling.nearest,
    "elevation": Resampling.bilinear,
}


@dataclass(frozen=True)
class SourceBand:
    """One band a scene input offers.

    Attributes:
        names: labels it answers to (GDAL band name or description, file name, STAC asset
            key, ``eo:bands`` name and common name); ``names[0]`` is shown to users.
        dataset: what rasterio opens: a file, a GDAL subdataset or a ``/vsizip/``,
            ``/vsicurl/`` path.
        index: 1-based band number in ``dataset``.
        dtype: numpy dtype name of the raw values.
        scale, offset: ``physical = raw × scale + offset`` as the source declares it;
            ``scale`` is ``None`` when nothing is declared (see :func:`physical_scale_offset`).
        nodata: raw value of missing pixels (besides the dataset's own nodata and masks).
        saturated: raw value of saturated pixels (not assessable), if the product has one.
        resolution_m: native pixel size, metres.
        radiometry: where ``scale`` and ``offset`` come from, for the summary.
    """

    names: tuple[str, ...]
    dataset: str
    index: int
    dtype: str
    scale: float | None = None
    offset: float = 0.0
    nodata: float | None = None
    saturated: float | None = None
    resolution_m: float = 0.0
    radiometry: str = "not declared"

    @property
    def label(self) -> str:
        return self.names[0] if self.names else f"band {self.index}"

    def describe(self) -> dict[str, Any]:
        """Plain data for ``summary.json``: where the band was read and how."""
        return {
            "source": self.dataset, "band": self.index, "name": self.label,
            "scale": self.scale, "offset": self.offset, "nodata": self.nodata,
            "resolution_m": self.resolution_m, "radiometry": self.radiometry,
        }


@dataclass(frozen=True)
class SceneSource:
    """What a scene input offers.

    Attributes:
        path: the input as the user gave it (file, folder or URL).
        kind: the format's registry name (``"sentinel2-safe"``, ``"band-folder"``,
            ``"stac-item"``, ``"raster"``).
        bands: the bands offered, in a stable order (``--bands NAME=NUMBER`` numbers them
            from 1).
        grid: the grid every band is read on: the finest of the scene (its ``path`` is the
            input).
        scene_classification: the Sentinel-2 L2A ``SCL`` band, when the input has one.
        processing_level: ``"L1C"``, ``"L2A"`` or ``""`` (unknown).
        processing_baseline: e.g. ``"05.09"``, or ``""``.
        missing: bands the input's metadata lists but whose files are absent.
        notes: what was assumed while reading the input (for the log and the summary).
    """

    path: str
    kind: str
    bands: tuple[SourceBand, ...]
    grid: RasterInfo
    scene_classification: SourceBand | None = None
    processing_level: str = ""
    processing_baseline: str = ""
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def offered(self) -> str:
        """``"1=B4, 2=B3, ..."``: the bands, numbered as ``--bands`` takes them."""
        return ", ".join(f"{i}={b.names[0] if b.names else '?'}" for i, b in enumerate(self.bands, start=1))


def is_url(text: str | Path) -> bool:
    return str(text).startswith(("http://", "https://"))


def gdal_path(href: str) -> str:
    """What GDAL opens for ``href``: remote files through ``/vsicurl/``."""
    return f"/vsicurl/{href}" if is_url(href) else href


def physical_scale_offset(band: Band, source: SourceBand) -> tuple[float, float]:
    """``(scale, offset)`` with ``physical = raw × scale + offset`` for ``band`` read from ``source``.

    What the source declares wins. Otherwise reflectance stored as integers is taken as
    Sentinel-2 digital numbers (reflectance × :data:`~slidemap.bands.SENTINEL2_DN_PER_REFLECTANCE`,
    no offset: an undeclared offset is caught by the radiometry check), and everything else
    (floating-point reflectance, metres, degrees, 8-bit DN) as stored.
    """
    if source.scale is not None:
        return source.scale, source.offset
    if band.unit == "reflectance" and np.issubdtype(np.dtype(source.dtype), np.integer):
        return 1.0 / SENTINEL2_DN_PER_REFLECTANCE, 0.0
    return 1.0, 0.0


# ------------------------------------------------------------------------- band mapping
_MAPPING_ITEM = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d+)\s*$")


def parse_band_mapping(text: str) -> dict[str, int]:
    """Parse ``"B2=2,B3=3,B4=4"`` into ``{"B2": 2, ...}`` (1-based band numbers).

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


#: Where a band of a band set comes from: a band of the scene, the separate DEM, or a slope
#: computed from the elevation.
BandChoice = (tuple[Literal["image"], SourceBand] | tuple[Literal["dem"], None]
              | tuple[Literal["slope"], None])


def _explicit(band: Band, mapping: Mapping[str, int], source: SceneSource) -> SourceBand | None:
    for key, number in mapping.items():
        if band.matches(key):
            if not 1 <= number <= len(source.bands):
                raise InputError(
                    f"--bands maps {key} to band {number}, but the scene has bands "
                    f"1..{len(source.bands)} ({source.offered()})", source.path,
                )
            return source.bands[number - 1]
    return None


def _positional(band_set: BandSet, source: SceneSource, have_dem: bool) -> list[SourceBand | None]:
    """Bands of an undescribed raster taken in set order: all of them when the counts match,
    or all but the terrain bands (elevation, slope) when a separate DEM supplies those."""
    count = len(source.bands)
    terrain = [b.role in (*ELEVATION_ROLES, "slope") for b in band_set.bands]
    take = [True] * len(band_set) if count == len(band_set) else [not t for t in terrain]
    if sum(take) != count or (count != len(band_set) and not have_dem):
        return [None] * len(band_set)
    offered = iter(source.bands)
    return [next(offered) if t else None for t in take]


def map_bands(
    band_set: BandSet, source: SceneSource, mapping: Mapping[str, int] | None = None, *,
    have_dem: bool = False,
) -> tuple[BandChoice, ...]:
    """Where each band of ``band_set`` comes from, in band-set order.

    A band is found, in this order: in the explicit ``mapping`` (``--bands``; keys are band
    names, roles or aliases, numbers count the scene's bands from 1); by the names the
    scene gives its bands (matched against the band's name, role and aliases,
    case-insensitive); an elevation band from the separate DEM when ``have_dem``; a
    ``slope`` band computed from the elevation. A raster without any band names and no
    mapping is taken in set order when its band count fits.

    Raises:
        InputError: a band cannot be found; the message names it, lists what the scene
            offers and what the model needs.
    """
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if band_set.find(k) is None]
    if unknown:
        raise InputError(
            f"--bands names {', '.join(unknown)}, which band set {band_set.name!r} "
            f"({', '.join(band_set.names)}) does not have"
        )
    found: list[SourceBand | None] = []
    for band in band_set.bands:
        chosen = _explicit(band, mapping, source)
        if chosen is None:
            chosen = next((s for s in source.bands if any(band.matches(n) for n in s.names)), None)
        found.append(chosen)
    if not mapping and not any(s.names for s in source.bands):
        found = _positional(band_set, source, have_dem)
    elevation_in_image = any(
        src is not None and band.role in ELEVATION_ROLES
        for band, src in zip(band_set.bands, found, strict=True)
    )
    resolved: list[BandChoice] = []
    missing: list[str] = []
    for band, src in zip(band_set.bands, found, strict=True):
        if src is not None:
            resolved.append(("image", src))
        elif band.role in ELEVATION_ROLES and have_dem:
            resolved.append(("dem", None))
        elif band.role == "slope" and (have_dem or elevation_in_image):
            resolved.append(("slope", None))
        else:
            missing.append(band.name)
    if missing:
        terrain = any(band_set.find(name).role in (*ELEVATION_ROLES, "slope")  # type: ignore[union-attr]
                      for name in missing)
        absent = (f"; the product's files for {', '.join(source.missing)} are missing"
                  if source.missing else "")
        raise InputError(
            f"cannot find band(s) {', '.join(missing)}; the model needs {', '.join(band_set.names)} "
            f"(band set {band_set.name!r}); the scene offers {source.offered() or 'no bands'}{absent}; "
            f"name the bands (band descriptions) or pass --bands NAME=NUMBER,..."
            f"{' or pass --dem DEM.tif' if terrain else ''}",
            source.path,
        )
    return tuple(resolved)


def source_label(path: str | Path) -> str:
    """A short name for an input, for messages: the file or folder name, or the URL."""
    return str(path) if is_url(path) else Path(path).name


def scene_name(path: str | Path) -> str:
    """A name for the outputs of one scene: the file or folder name without its suffix (the
    product's folder for its ``MTD_MSIL*.xml``), or the last part of a URL."""
    text = str(path).rstrip("/")
    name = Path(text.rsplit("/", 1)[-1] if is_url(text) else text)
    if name.name.upper().startswith("MTD_MSIL") and not is_url(text):
        name = Path(text).resolve().parent
    stem = name.name
    for suffix in (".zip", ".SAFE", ".json", ".tif", ".tiff", ".vrt", ".xml"):
        if stem.lower().endswith(suffix.lower()):
            stem = stem[: -len(suffix)]
    return stem or "scene"
