"""The scene input formats, and the one function that turns any input into a :class:`SceneSource`.

=================  ===============================================================  ============================
format             what is given                                                     module
=================  ===============================================================  ============================
``stac-item``      a STAC Item: ``.json`` file or ``http(s)`` URL                     :mod:`slidemap.io.stac`
``sentinel2-safe`` a Sentinel-2 L1C/L2A ``.SAFE`` folder, its ``MTD_MSIL*.xml``, zip  :mod:`slidemap.io.sentinel2`
``band-folder``    a folder of per-band files (GeoTIFF, COG, JP2, VRT)                :mod:`slidemap.io.band_folder`
``raster``         one multi-band raster (GeoTIFF, VRT, any file GDAL reads)          here
=================  ===============================================================  ============================

Formats are tried in this order; the first that claims an input reads it. ``.h5`` files
and folders of them are Landslide4Sense patches, not scenes (:func:`scene_format` is
``None`` for them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slidemap.io import band_folder, sentinel2, stac
from slidemap.io.geotiff import dataset_info, open_raster
from slidemap.io.scene_source import SceneSource, SourceBand, is_url
from slidemap.io.sentinel2 import SCENE_CLASSIFICATION, product_radiometry

_LEVELS = {"Level-2A": "L2A", "Level-1C": "L1C"}


def _claims_raster(path: str | Path) -> bool:
    return isinstance(path, Path) and path.is_file() and path.suffix.lower() not in (".h5", ".json", ".zip")


def open_multiband_raster(path: str | Path) -> SceneSource:
    """The bands of one raster file, named by their descriptions (or GDAL ``BANDNAME`` tags).

    Each band's scale and offset are the raster's own (GeoTIFF/VRT metadata), or those of
    Sentinel-2 product tags it carries (a ``gdal_translate`` copy of a SENTINEL2
    subdataset), or undeclared.
    """
    path = Path(path)
    with open_raster(path) as ds:
        info = dataset_info(ds, path)
        dataset_tags = ds.tags()
        band_tags = [ds.tags(i) for i in range(1, ds.count + 1)]
    resolution = float(np.mean(info.pixel_size_m))
    bands: list[SourceBand] = []
    scene_classification = None
    for i in range(1, info.count + 1):
        tags = band_tags[i - 1]
        names = tuple(dict.fromkeys(n for n in (info.descriptions[i - 1], tags.get("BANDNAME", "")) if n))
        radiometry = product_radiometry(dataset_tags, tags)
        if radiometry is not None:
            scale, offset, how = radiometry
        elif info.scales[i - 1] != 1.0 or info.offsets[i - 1] != 0.0:
            scale, offset, how = info.scales[i - 1], info.offsets[i - 1], "raster scale/offset metadata"
        else:
            scale, offset, how = None, 0.0, "not declared"
        band = SourceBand(names, str(path), i, info.dtypes[i - 1], scale, offset,
                          resolution_m=resolution, radiometry=how)
        if any(n.split(",")[0].strip().upper() == SCENE_CLASSIFICATION for n in names):
            scene_classification = band
        else:
            bands.append(band)
    return SceneSource(
        path=str(path), kind="raster", bands=tuple(bands), grid=info,
        scene_classification=scene_classification,
        processing_level=_LEVELS.get(dataset_tags.get("PROCESSING_LEVEL", ""), ""),
        processing_baseline=dataset_tags.get("PROCESSING_BASELINE", ""),
    )


@dataclass(frozen=True)
class SceneFormat:
    """One scene input format: its name, whether it claims an input, how to read it."""

    name: str
    claims: Callable[[str | Path], bool]
    open: Callable[[str | Path], SceneSource]


SCENE_FORMATS: list[SceneFormat] = [
    SceneFormat("stac-item", stac.claims, stac.open_item),
    SceneFormat("sentinel2-safe", sentinel2.claims, sentinel2.open_product),
    SceneFormat("band-folder", band_folder.claims, band_folder.open_band_folder),
    SceneFormat("raster", _claims_raster, open_multiband_raster),
]


def as_input(text: str | Path) -> str | Path:
    """An input as given on the command line: URLs stay text, everything else is a path."""
    return str(text) if is_url(text) else Path(text)


def scene_format(path: str | Path) -> SceneFormat | None:
    """The format that reads ``path`` as a scene, or ``None`` (``.h5`` patches, unknown)."""
    path = as_input(path)
    return next((f for f in SCENE_FORMATS if f.claims(path)), None)


def open_scene_source(path: str | Path) -> SceneSource:
    """What the scene input ``path`` offers (cached per process while the input is unchanged).

    Raises:
        InputError: not a scene input, or an input that cannot be read (names the file).
    """
    path = as_input(path)
    stamp = 0 if isinstance(path, str) or not path.exists() else path.stat().st_mtime_ns
    return _open_cached(path, stamp)


@functools.lru_cache(maxsize=16)
def _open_cached(path: str | Path, stamp: int) -> SceneSource:
    del stamp  # part of the cache key: a rewritten input is read again
    found = scene_format(path)
    if found is None:
        from slidemap.errors import InputError

        raise InputError(
            "is not a scene: expected a GeoTIFF/VRT, a Sentinel-2 .SAFE folder (or its MTD_MSIL*.xml "
            "or zip), a folder of per-band files or a STAC item (.json or URL)", path,
        )
    return found.open(path)
