"""Sentinel-2 L1C and L2A products as downloaded, through GDAL's own SENTINEL2 driver.

A product is accepted as its ``.SAFE`` folder, its main metadata file (``MTD_MSIL1C.xml``
or ``MTD_MSIL2A.xml``) or the zipped product. GDAL's driver exposes one subdataset per
resolution (``10m``: B2, B3, B4, B8; ``20m``: B5, B6, B7, B8A, B11, B12 and the L2A scene
classification ``SCL``; ``60m``: B1, B9 and, in L1C, B10) with each band's name
(``BANDNAME``), its ``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET`` and the product's
quantification value as metadata, but as no band scale or offset: this module turns that
metadata into each band's ``physical = DN × scale + offset``
(:func:`product_radiometry`), so that products of processing baseline 04.00 and later
(``offset = -1000 DN``) and earlier ones (no offset) give the same reflectance.

GDAL reads a band whose file is absent as zeros, with only a warning: the files behind
every band are checked here, and a missing one is reported by name.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

from rasterio.errors import NotGeoreferencedWarning

from slidemap.bands import SENTINEL2_BY_NAME, SENTINEL2_DN_PER_REFLECTANCE
from slidemap.errors import InputError
from slidemap.io.geotiff import dataset_info, open_raster
from slidemap.io.scene_source import SceneSource, SourceBand

#: Main metadata files of Sentinel-2 user products, L2A first.
PRODUCT_METADATA: tuple[str, ...] = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")
_LEVELS = {"Level-2A": "L2A", "Level-1C": "L1C", "Level-2Ap": "L2A"}
_SUBDATASET = re.compile(r":(\d+)m:(EPSG_\d+)$")
SCENE_CLASSIFICATION = "SCL"


def product_radiometry(dataset_tags: Mapping[str, str], band_tags: Mapping[str, str]
                       ) -> tuple[float, float, str] | None:
    """``(scale, offset, how)`` from Sentinel-2 product metadata, or ``None`` if there is none.

    ``reflectance = (DN + ADD_OFFSET) / QUANTIFICATION_VALUE``, with the band's
    ``BOA_ADD_OFFSET`` (L2A) or ``RADIO_ADD_OFFSET`` (L1C) (0 before baseline 04.00) and the
    product's ``BOA_QUANTIFICATION_VALUE`` (L2A) or ``QUANTIFICATION_VALUE`` (L1C). GDAL's
    SENTINEL2 driver, and ``gdal_translate`` copies of its subdatasets, carry these tags.
    """
    quantification = dataset_tags.get("BOA_QUANTIFICATION_VALUE") or dataset_tags.get("QUANTIFICATION_VALUE")
    add_offset = band_tags.get("BOA_ADD_OFFSET") or band_tags.get("RADIO_ADD_OFFSET")
    if quantification is None and add_offset is None:
        return None
    try:
        dn_per_reflectance = float(quantification) if quantification else SENTINEL2_DN_PER_REFLECTANCE
        offset_dn = float(add_offset) if add_offset else 0.0
    except ValueError:
        return None
    if dn_per_reflectance <= 0:
        return None
    how = f"product metadata: quantification value {dn_per_reflectance:g}, add offset {offset_dn:g} DN"
    return 1.0 / dn_per_reflectance, offset_dn / dn_per_reflectance, how


def _zip_metadata(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"is not a readable zip archive ({exc})", path) from None
    for wanted in PRODUCT_METADATA:
        for name in names:
            parts = name.split("/")
            if len(parts) == 2 and parts[0].upper().endswith(".SAFE") and parts[1] == wanted:
                return f"/vsizip/{path}/{name}"
    raise InputError(
        "zip archive is not a Sentinel-2 product: it holds no <name>.SAFE/MTD_MSIL2A.xml or "
        "MTD_MSIL1C.xml", path,
    )


def claims(path: str | Path) -> bool:
    """A ``.SAFE`` folder, a folder holding a product's main metadata, that file, or a zip."""
    if not isinstance(path, Path):
        return False
    if path.is_dir():
        return path.suffix.upper() == ".SAFE" or any((path / n).is_file() for n in PRODUCT_METADATA)
    return path.name in PRODUCT_METADATA or path.suffix.lower() == ".zip"


def product_metadata(path: Path) -> str:
    """What GDAL opens for the product at ``path``: its main metadata file (in a zip, a
    ``/vsizip/`` path).

    Raises:
        InputError: a ``.SAFE`` folder without the metadata file, or a zip that is not a product.
    """
    if path.is_dir():
        found = next((path / n for n in PRODUCT_METADATA if (path / n).is_file()), None)
        if found is None:
            raise InputError(
                f"SAFE folder has no {' or '.join(PRODUCT_METADATA)}; give the product as downloaded", path
            )
        return str(found)
    if path.suffix.lower() == ".zip":
        return _zip_metadata(path)
    return str(path)


def _file_present(files: list[str], code: str) -> bool:
    pattern = re.compile(rf"_{re.escape(code)}(_\d+m)?\.jp2$", re.IGNORECASE)
    return any(pattern.search(name) for name in files)


def open_product(path: str | Path) -> SceneSource:
    """The bands of a Sentinel-2 L1C/L2A product on its 10 m grid.

    Raises:
        InputError: not a product GDAL can read, no image in it, or no georeferencing.
    """
    path = Path(path)
    metadata = product_metadata(path)
    with warnings.catch_warnings():  # the product itself has subdatasets, no georeferencing
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with open_raster(metadata, label=path) as product:
            tags = product.tags()
            subdatasets = list(product.subdatasets)
    by_resolution: dict[int, str] = {}
    zones = sorted({m.group(2) for s in subdatasets if (m := _SUBDATASET.search(s))})
    for name in subdatasets:
        match = _SUBDATASET.search(name)
        if match and match.group(2) == zones[0]:
            by_resolution.setdefault(int(match.group(1)), name)
    if not by_resolution:
        raise InputError("GDAL's SENTINEL2 driver finds no image in the product (is GRANULE/ complete?)", path)
    notes = [f"the product spans UTM zones {', '.join(zones)}; {zones[0]} is read"] if len(zones) > 1 else []
    nodata = float(tags.get("SPECIAL_VALUE_NODATA", 0))
    saturated = float(tags["SPECIAL_VALUE_SATURATED"]) if "SPECIAL_VALUE_SATURATED" in tags else None
    bands: dict[str, SourceBand] = {}
    scene_classification: SourceBand | None = None
    missing: list[str] = []
    grid = None
    for resolution in sorted(by_resolution):
        subdataset = by_resolution[resolution]
        with open_raster(subdataset, label=path) as ds:
            if grid is None:
                grid = dataset_info(ds, path)
            files = [str(f) for f in ds.files]
            for index in range(1, ds.count + 1):
                band_tags = ds.tags(index)
                name = band_tags.get("BANDNAME", "")
                known = SENTINEL2_BY_NAME.get(name)
                code = known.code if known else name
                if name in bands or (known is None and name != SCENE_CLASSIFICATION):
                    continue
                if not _file_present(files, code):
                    if known is not None:
                        missing.append(name)
                    continue
                description = ds.descriptions[index - 1] or name
                if name == SCENE_CLASSIFICATION:
                    if scene_classification is None:
                        scene_classification = SourceBand(
                            (name, description), subdataset, index, ds.dtypes[index - 1],
                            resolution_m=resolution, radiometry="class codes")
                    continue
                radiometry = product_radiometry(tags, band_tags)
                scale, offset, how = radiometry or (None, 0.0, "not declared")
                bands[name] = SourceBand(
                    (name, known.code, description), subdataset, index, ds.dtypes[index - 1],
                    scale, offset, nodata, saturated, resolution, how,
                )
    assert grid is not None
    order = [b.name for b in SENTINEL2_BY_NAME.values()]
    offered = tuple(bands[name] for name in order if name in bands)
    return SceneSource(
        path=str(path), kind="sentinel2-safe", bands=offered, grid=grid,
        scene_classification=scene_classification,
        processing_level=_LEVELS.get(tags.get("PROCESSING_LEVEL", ""), ""),
        processing_baseline=tags.get("PROCESSING_BASELINE", ""),
        missing=tuple(n for n in order if n in missing and n not in bands), notes=tuple(notes),
    )
