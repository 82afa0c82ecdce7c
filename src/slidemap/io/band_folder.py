"""A folder of per-band files (GeoTIFF, COG, JPEG 2000, VRT), one band per file.

Files are named as ESA and the common archives name them: ``T34UCF_20230823T095559_B04_10m.jp2``,
``..._B04.jp2``, ``B04.tif``, ``B4.tif``, ``red.tif``, ``SCL_20m.tif``. A file's band is the
last ``_``-separated part of its name once a resolution suffix (``_10m``) is removed, or the
whole name; it is matched against the band set like any band label. Each file keeps its own
grid, scale, offset and nodata; the folder's grid is that of its finest file. When a band
comes at several resolutions (an L2A ``R10m``/``R20m`` mixture), the finest file is used.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from slidemap.bands import sentinel2_band
from slidemap.errors import InputError
from slidemap.io.geotiff import RasterInfo, dataset_info, open_raster
from slidemap.io.scene_source import SceneSource, SourceBand
from slidemap.io.sentinel2 import SCENE_CLASSIFICATION, product_radiometry

log = logging.getLogger(__name__)

RASTER_SUFFIXES: frozenset[str] = frozenset({".tif", ".tiff", ".jp2", ".vrt"})
_RESOLUTION_SUFFIX = re.compile(r"_(\d+)m$", re.IGNORECASE)


def band_files(folder: Path) -> list[Path]:
    """The raster files directly in ``folder``, by name (hidden and temporary files skipped)."""
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and f.suffix.lower() in RASTER_SUFFIXES and not f.name.startswith("."))


def claims(path: str | Path) -> bool:
    """A folder with raster files and no ``.h5`` patches."""
    if not isinstance(path, Path) or not path.is_dir():
        return False
    if any(path.glob("*.h5")) or any((path / d).is_dir() for d in ("img", "TrainData", "images")):
        return False
    return bool(band_files(path))


def file_labels(path: Path) -> tuple[str, ...]:
    """The labels a band file answers to: its band token (``B04`` in ``T34UCF_..._B04_10m.jp2``)
    and its whole name without suffix."""
    stem = _RESOLUTION_SUFFIX.sub("", path.stem)
    token = stem.rsplit("_", 1)[-1]
    return tuple(dict.fromkeys((token, stem, path.stem)))


def _source_band(path: Path, info: RasterInfo, tags: dict[str, dict[str, str]]) -> SourceBand:
    labels = file_labels(path)
    radiometry = product_radiometry(tags["dataset"], tags["band"])
    if radiometry is not None:
        scale, offset, how = radiometry
    elif info.scales[0] != 1.0 or info.offsets[0] != 0.0:
        scale, offset, how = info.scales[0], info.offsets[0], "file scale/offset"
    else:
        scale, offset, how = None, 0.0, "not declared"
    nodata = None
    if info.nodata is None and sentinel2_band(labels[0]) and np.dtype(info.dtypes[0]).kind in "iu":
        nodata, how = 0.0, f"{how}; 0 = no data (Sentinel-2 convention)"
    resolution = float(np.mean(info.pixel_size_m))
    return SourceBand(labels, str(path), 1, info.dtypes[0], scale, offset, nodata,
                      resolution_m=resolution, radiometry=how)


def open_band_folder(path: str | Path) -> SceneSource:
    """The bands of a folder of per-band files, on the grid of its finest file.

    Raises:
        InputError: an unreadable or ungeoreferenced file (named), or no band file.
    """
    folder = Path(path)
    chosen: dict[str, tuple[SourceBand, RasterInfo]] = {}
    notes: list[str] = []
    for file in band_files(folder):
        with open_raster(file) as ds:
            info = dataset_info(ds, file)
            tags = {"dataset": ds.tags(), "band": ds.tags(1)}
        if info.count != 1:
            notes.append(f"{file.name} has {info.count} bands, not one: skipped")
            continue
        band = _source_band(file, info, tags)
        known = sentinel2_band(band.label)
        key = known.name if known else band.label.upper()
        previous = chosen.get(key)
        if previous is None or band.resolution_m < previous[0].resolution_m:
            chosen[key] = (band, info)
    scl = chosen.pop(SCENE_CLASSIFICATION, None)
    if not chosen:
        raise InputError("folder has no single-band raster files to read bands from", folder)
    for note in notes:
        log.info("%s: %s", folder, note)
    finest = min(chosen.values(), key=lambda item: item[0].resolution_m)[1]
    crs = {str(info.crs) for _, info in chosen.values()}
    if len(crs) > 1:
        notes.append(f"band files are in {len(crs)} CRSs ({', '.join(sorted(crs))}); all are warped "
                     f"onto {finest.path.name}'s grid")
    from dataclasses import replace

    return SceneSource(
        path=str(folder), kind="band-folder",
        bands=tuple(band for band, _ in chosen.values()),
        grid=replace(finest, path=folder),
        scene_classification=None if scl is None else scl[0],
        notes=tuple(notes),
    )
