"""A STAC Item (a local ``.json`` file or an ``http(s)`` URL) as a scene, read with pystac.

Bands come from the item's assets: an asset is a band when its key, its ``eo:bands`` name
or its common name names a Sentinel-2 band (``B04``, ``red``, ``rededge1``, ``nir08``...;
the ambiguous eo 1.0 common name ``rededge`` alone is not used), or the scene
classification (``scl``). Each asset's ``raster:bands`` ``scale``, ``offset`` and ``nodata``
are applied; an item of Sentinel-2 processing baseline 04.00 or later whose assets declare
no offset (some catalogues serve the files unharmonised) gets ESA's ``-1000 DN`` offset,
and the summary says so. Remote assets are read through GDAL's ``/vsicurl/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slidemap.bands import (
    SENTINEL2_ADD_OFFSET_DN,
    SENTINEL2_DN_PER_REFLECTANCE,
    SENTINEL2_OFFSET_BASELINE,
    sentinel2_band,
)
from slidemap.errors import InputError
from slidemap.io.geotiff import RasterInfo, dataset_info, open_raster
from slidemap.io.scene_source import SceneSource, SourceBand, gdal_path, is_url
from slidemap.io.sentinel2 import SCENE_CLASSIFICATION

_LEVEL_BY_PRODUCT_TYPE = {"S2MSI2A": "L2A", "S2MSI1C": "L1C"}


def claims(path: str | Path) -> bool:
    """A URL, or a ``.json`` file holding a GeoJSON Feature with a ``stac_version``."""
    if is_url(path):
        return True
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # a broken .json is reported by open_item, naming the file
    return isinstance(head, dict) and "stac_version" in head


def _read_item(path: str | Path) -> Any:
    import pystac

    try:
        item = pystac.read_file(str(path))
    except Exception as exc:  # noqa: BLE001 - pystac raises bare Exceptions for I/O and JSON
        cause = exc.__cause__ or exc
        reason = " ".join(str(cause).split()) or type(cause).__name__
        what = "cannot fetch the STAC item" if is_url(path) else "cannot read as a STAC item"
        raise InputError(f"{what} ({reason[:300]})", path) from None
    if not isinstance(item, pystac.Item):
        raise InputError(f"is a STAC {type(item).__name__}, not an Item; give one item (one scene)", path)
    return item


def _level(item: Any) -> str:
    properties = item.properties
    level = _LEVEL_BY_PRODUCT_TYPE.get(str(properties.get("s2:product_type", "")), "")
    if not level:
        text = f"{properties.get('processing:level', '')} {item.collection_id or ''}".lower()
        level = "L2A" if ("l2a" in text or "l2" in text) else "L1C" if "l1c" in text else ""
    return level


def _baseline(item: Any) -> str:
    return str(item.properties.get("s2:processing_baseline", "") or "")


def _names(key: str, asset: Any) -> tuple[str, ...]:
    eo = (asset.extra_fields.get("eo:bands") or [{}])[0]
    common = eo.get("common_name")
    names = [key, eo.get("name"), None if common == "rededge" else common]
    return tuple(dict.fromkeys(str(n) for n in names if n))


def _radiometry(asset: Any, baseline: str) -> tuple[float | None, float, float | None, str]:
    """``(scale, offset, nodata, how)`` of a Sentinel-2 band asset: its first ``raster:bands``
    entry, or ESA's offset for a baseline-04.00+ item that declares none."""
    raster = (asset.extra_fields.get("raster:bands") or [{}])[0]
    nodata = raster.get("nodata")
    nodata = float(nodata) if isinstance(nodata, int | float) else None
    if "scale" in raster or "offset" in raster:
        scale, offset = float(raster.get("scale", 1.0)), float(raster.get("offset", 0.0))
        return scale, offset, nodata, "STAC raster:bands scale/offset"
    try:
        newer = float(baseline) >= SENTINEL2_OFFSET_BASELINE
    except ValueError:
        newer = False
    if newer:
        return (1.0 / SENTINEL2_DN_PER_REFLECTANCE, SENTINEL2_ADD_OFFSET_DN / SENTINEL2_DN_PER_REFLECTANCE,
                nodata, f"processing baseline {baseline} without a declared offset: ESA's "
                        f"{SENTINEL2_ADD_OFFSET_DN:g} DN applied")
    return None, 0.0, nodata, "not declared"


def open_item(path: str | Path) -> SceneSource:
    """The bands of a STAC Item on the grid of its finest band asset.

    Raises:
        InputError: unreadable or not an Item, no band asset, or an asset that cannot be
            opened (named, with its href).
    """
    item = _read_item(path)
    baseline = _baseline(item)
    bands: dict[str, tuple[SourceBand, RasterInfo]] = {}
    scene_classification: SourceBand | None = None
    notes: list[str] = []
    for key, asset in item.assets.items():
        names = _names(key, asset)
        known = next((b for n in names if (b := sentinel2_band(n))), None)
        is_scl = any(n.upper() == SCENE_CLASSIFICATION for n in names)
        if known is None and not is_scl:
            continue
        href = asset.get_absolute_href() or asset.href
        dataset = gdal_path(href)
        with open_raster(dataset, label=f"{path} (asset {key!r}: {href})") as ds:
            info = dataset_info(ds, f"{path} (asset {key!r})")
        resolution = float(sum(info.pixel_size_m) / 2)
        if is_scl:
            scene_classification = SourceBand((key, SCENE_CLASSIFICATION), dataset, 1, info.dtypes[0],
                                              resolution_m=resolution, radiometry="class codes")
            continue
        assert known is not None
        scale, offset, nodata, how = _radiometry(asset, baseline)
        if how.startswith("processing baseline"):
            notes.append(key)
        band = SourceBand((*names, known.name, known.code), dataset, 1, info.dtypes[0], scale, offset,
                          nodata, resolution_m=resolution, radiometry=how)
        previous = bands.get(known.name)
        if previous is None or resolution < previous[0].resolution_m:
            bands[known.name] = (band, info)
    if not bands:
        raise InputError("STAC item has no asset holding a Sentinel-2 band (by key, eo:bands name or "
                         "common name)", path)
    from dataclasses import replace

    finest = min(bands.values(), key=lambda pair: pair[0].resolution_m)[1]
    return SceneSource(
        path=str(path), kind="stac-item", bands=tuple(b for b, _ in bands.values()),
        grid=replace(finest, path=Path(str(path)) if not is_url(path) else Path(item.id)),
        scene_classification=scene_classification, processing_level=_level(item),
        processing_baseline=baseline,
        notes=(f"assets {', '.join(notes)}: processing baseline {baseline} without a declared offset; "
               f"ESA's {SENTINEL2_ADD_OFFSET_DN:g} DN applied",) if notes else (),
    )
