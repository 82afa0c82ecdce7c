"""Sentinel-2 products in the formats users download, built from a 10 m scene.

Tests and examples need real formats without downloads: these writers turn a scene on a
10 m grid (:class:`Scene10m`, e.g. the synthetic ``image.tif`` of
:func:`~slidemap.data.synthetic.scene.generate_scene`) into

* :func:`write_safe` — an L1C or L2A ``.SAFE`` product that GDAL's SENTINEL2 driver opens:
  ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` (processing level and baseline, quantification
  value, ``RADIO_ADD_OFFSET``/``BOA_ADD_OFFSET`` from baseline 04.00, special values), a
  granule with ``MTD_TL.xml`` (tile geocoding at 10, 20 and 60 m) and lossless JPEG 2000
  bands at their native resolutions (L2A: ``IMG_DATA/R10m|R20m|R60m/<tile>_<date>_B04_10m.jp2``
  and the scene classification ``SCL`` at 20 m; L1C: ``IMG_DATA/<tile>_<date>_B04.jp2``);
  :func:`zip_product` zips it as the Copernicus hub delivers it;
* :func:`write_band_folder` — one file per band (COG, GeoTIFF or JP2), named as ESA or the
  archives name them, with or without declared scale and offset;
* :func:`write_stac_item` — a STAC Item pointing at such files, with ``eo:bands`` and
  ``raster:bands`` (scale, offset, nodata) per asset.

A coarser band is the 10 m band decimated (its top-left pixel of each 2×2 or 6×6 block):
the synthetic scene's 20 m and 60 m bands are block-constant, so decimation loses nothing
and reading a product back with nearest-neighbour upsampling gives the 10 m scene exactly.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

from slidemap.bands import (
    SENTINEL2_ADD_OFFSET_DN,
    SENTINEL2_BY_NAME,
    SENTINEL2_DN_PER_REFLECTANCE,
    SENTINEL2_OFFSET_BASELINE,
)
from slidemap.errors import InputError
from slidemap.io.atomic import TMP_PREFIX, write_text_atomic

#: Bands of each product level (L2A has no cirrus band B10). A scene without B8A (the
#: synthetic one: Landslide4Sense has none) gets B8 in its place, so that every file GDAL's
#: driver expects is there.
LEVEL_BANDS: dict[str, tuple[str, ...]] = {
    "L1C": ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"),
    "L2A": ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"),
}
#: L2A bands at 60 m in the R60m folder (GDAL's driver reads B1 and B9 there).
_L2A_R60 = ("B1", "B9")
SCL_VEGETATION = 4


@dataclass(frozen=True)
class Scene10m:
    """Sentinel-2 digital numbers on a 10 m grid.

    Attributes:
        bands: Sentinel-2 band name (``"B4"``) → ``(H, W) uint16`` reflectance × 10 000
            (0 = no data), without any offset.
        crs, transform: the grid (UTM, 10 m pixels).
    """

    bands: dict[str, np.ndarray]
    crs: CRS
    transform: Affine

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.bands.values())).shape

    @classmethod
    def from_geotiff(cls, path: str | Path) -> Scene10m:
        """The bands of a multi-band GeoTIFF named ``B1``..``B12`` (the synthetic ``image.tif``)."""
        with rasterio.open(path) as src:
            names = [d or "" for d in src.descriptions]
            unknown = [n for n in names if n not in SENTINEL2_BY_NAME]
            if unknown:
                raise InputError(f"bands {unknown} are not Sentinel-2 band names (B1..B12)", path)
            return cls({n: src.read(i + 1) for i, n in enumerate(names)}, src.crs, src.transform)

    def valid(self) -> np.ndarray:
        """``(H, W) bool``: every band has data."""
        return np.all([band != 0 for band in self.bands.values()], axis=0)

    def nodata_on_blocks(self, step: int = 6) -> Scene10m:
        """The scene with no data on every ``step × step`` block (of the 60 m grid) that has
        any: coarse bands then agree with the 10 m ones on where the data ends."""
        height, width = self.shape
        rows, cols = -(-height // step) * step, -(-width // step) * step
        missing = np.zeros((rows, cols), dtype=bool)
        missing[:height, :width] = ~self.valid()
        blocks = missing.reshape(rows // step, step, cols // step, step).any(axis=(1, 3))
        outside = np.repeat(np.repeat(blocks, step, axis=0), step, axis=1)[:height, :width]
        return Scene10m({n: np.where(outside, 0, b).astype(b.dtype) for n, b in self.bands.items()},
                        self.crs, self.transform)


def _native(scene: Scene10m, name: str, resolution: int) -> tuple[np.ndarray, Affine]:
    step = resolution // 10
    values = scene.bands[name] if name in scene.bands or name != "B8A" else scene.bands["B8"]
    return values[::step, ::step], scene.transform @ Affine.scale(step)


def _dn(values: np.ndarray, offset_dn: float) -> np.ndarray:
    """Digital numbers as a product of ``offset_dn`` stores them: ``DN = ρ·10⁴ − offset``."""
    shifted = values.astype(np.int64) - int(offset_dn)
    return np.where(values == 0, 0, np.clip(shifted, 1, 65534)).astype(np.uint16)


def _write(path: Path, array: np.ndarray, crs: CRS, transform: Affine, driver: str,
           scale: float | None = None, offset: float | None = None, nodata: float | None = None,
           description: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"REVERSIBLE": "YES", "QUALITY": 100} if driver == "JP2OpenJPEG" else {}
    with rasterio.open(path, "w", driver=driver, width=array.shape[1], height=array.shape[0], count=1,
                       dtype=array.dtype, crs=crs, transform=transform, nodata=nodata, **options) as dst:
        dst.write(array, 1)
        if scale is not None:
            dst.scales = (scale,)
            dst.offsets = (offset or 0.0,)
        if description:
            dst.set_band_description(1, description)
    return path


def _offset_for(baseline: str) -> float:
    return SENTINEL2_ADD_OFFSET_DN if float(baseline) >= SENTINEL2_OFFSET_BASELINE else 0.0


@dataclass(frozen=True)
class ProductName:
    """The names ESA gives a product and its files."""

    level: str
    baseline: str
    tile: str = "T45RUL"
    sensing: str = "20240115T050659"

    @property
    def safe(self) -> str:
        kind = "MSIL2A" if self.level == "L2A" else "MSIL1C"
        return f"S2B_{kind}_{self.sensing}_N{self.baseline.replace('.', '')}_R019_{self.tile}_{self.sensing}.SAFE"

    @property
    def granule(self) -> str:
        return f"{self.level}_{self.tile}_A036000_{self.sensing}"

    @property
    def prefix(self) -> str:
        return f"{self.tile}_{self.sensing}"


def _tile_metadata(scene: Scene10m, level: str) -> str:
    height, width = scene.shape
    x0, y0 = scene.transform.c, scene.transform.f
    epsg = scene.crs.to_epsg()
    sizes = "".join(
        f'<Size resolution="{r}"><NROWS>{math.ceil(height * 10 / r)}</NROWS>'
        f"<NCOLS>{math.ceil(width * 10 / r)}</NCOLS></Size>" for r in (10, 20, 60))
    positions = "".join(
        f'<Geoposition resolution="{r}"><ULX>{x0:.0f}</ULX><ULY>{y0:.0f}</ULY><XDIM>{r}</XDIM>'
        f"<YDIM>-{r}</YDIM></Geoposition>" for r in (10, 20, 60))
    kind = "Level-2A" if level == "L2A" else "Level-1C"
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<n1:{kind}_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/'
        f'S2_PDI_{kind}_Tile_Metadata.xsd">\n<n1:Geometric_Info><Tile_Geocoding>'
        f"<HORIZONTAL_CS_NAME>{scene.crs.to_string()}</HORIZONTAL_CS_NAME>"
        f"<HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>{sizes}{positions}"
        f"</Tile_Geocoding></n1:Geometric_Info>\n</n1:{kind}_Tile_ID>\n"
    )


def _product_metadata(name: ProductName, files: list[str], offset_dn: float) -> str:
    level = name.level
    root = "Level-2A_User_Product" if level == "L2A" else "Level-1C_User_Product"
    images = "\n".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    band_ids = range(13)
    if level == "L2A":
        quantification = (f'<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">'
                          f"{SENTINEL2_DN_PER_REFLECTANCE:.0f}</BOA_QUANTIFICATION_VALUE>"
                          "</QUANTIFICATION_VALUES_LIST>")
        offsets = ("<BOA_ADD_OFFSET_VALUES_LIST>" + "".join(
            f'<BOA_ADD_OFFSET band_id="{i}">{offset_dn:.0f}</BOA_ADD_OFFSET>' for i in band_ids)
            + "</BOA_ADD_OFFSET_VALUES_LIST>") if offset_dn else ""
    else:
        quantification = f'<QUANTIFICATION_VALUE unit="none">{SENTINEL2_DN_PER_REFLECTANCE:.0f}</QUANTIFICATION_VALUE>'
        offsets = ("<Radiometric_Offset_List>" + "".join(
            f'<RADIO_ADD_OFFSET band_id="{i}">{offset_dn:.0f}</RADIO_ADD_OFFSET>' for i in band_ids)
            + "</Radiometric_Offset_List>") if offset_dn else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level[1:]}.xsd">\n'
        "<n1:General_Info>\n<Product_Info>\n"
        f"<PRODUCT_URI>{name.safe}</PRODUCT_URI>\n"
        f"<PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>\n"
        f"<PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>\n"
        f"<PROCESSING_BASELINE>{name.baseline}</PROCESSING_BASELINE>\n"
        '<Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>\n'
        '<Product_Organisation><Granule_List><Granule datastripIdentifier="synthetic" '
        'granuleIdentifier="synthetic" imageFormat="JPEG2000">\n'
        f"{images}\n</Granule></Granule_List></Product_Organisation>\n</Product_Info>\n"
        "<Product_Image_Characteristics>\n"
        "<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>\n"
        "<Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>\n"
        f"{quantification}\n{offsets}\n"
        f"</Product_Image_Characteristics>\n</n1:General_Info>\n</n1:{root}>\n"
    )


def _publish(tmp: Path, final: Path) -> Path:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def write_safe(
    out_dir: str | Path, scene: Scene10m, *, level: str = "L2A", baseline: str = "05.09",
    scl: np.ndarray | None = None, omit: tuple[str, ...] = (), tile: str = "T45RUL",
) -> Path:
    """Write ``scene`` as a Sentinel-2 ``.SAFE`` product into ``out_dir``; return the folder.

    Args:
        out_dir: parent folder.
        scene: the 10 m digital numbers (no offset).
        level: ``"L1C"`` or ``"L2A"``.
        baseline: processing baseline; from ``"04.00"`` on, files store ``DN + 1000`` and the
            metadata declares ``-1000`` (``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``).
        scl: L2A scene classification ``(H, W) uint8`` on the 10 m grid (default: 4,
            vegetation, where there is data and 0 elsewhere), written at 20 m.
        omit: bands whose file is left out (a broken download).
        tile: MGRS tile id in the names.
    """
    if level not in LEVEL_BANDS:
        raise ValueError(f"level must be L1C or L2A, got {level!r}")
    name = ProductName(level, baseline, tile)
    offset_dn = _offset_for(baseline)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=out_dir))
    granule = Path("GRANULE") / name.granule
    files: list[str] = []
    for band in (b for b in LEVEL_BANDS[level] if b in scene.bands or b == "B8A"):
        known = SENTINEL2_BY_NAME[band]
        resolution = 60 if (level == "L2A" and band in _L2A_R60) else known.resolution_m
        folder = granule / "IMG_DATA" / (f"R{resolution}m" if level == "L2A" else "")
        stem = f"{name.prefix}_{known.code}" + (f"_{resolution}m" if level == "L2A" else "")
        files.append(str(folder / stem))
        if band in omit:
            continue
        values, transform = _native(scene, band, resolution)
        _write(tmp / folder / f"{stem}.jp2", _dn(values, offset_dn), scene.crs, transform, "JP2OpenJPEG")
    if level == "L2A":
        classes = np.where(scene.valid(), SCL_VEGETATION, 0).astype(np.uint8) if scl is None else scl
        for resolution in (20, 60):
            folder = granule / "IMG_DATA" / f"R{resolution}m"
            stem = f"{name.prefix}_SCL_{resolution}m"
            files.append(str(folder / stem))
            step = resolution // 10
            _write(tmp / folder / f"{stem}.jp2", classes[::step, ::step].astype(np.uint8), scene.crs,
                   scene.transform @ Affine.scale(step), "JP2OpenJPEG")
        _write_auxiliary(tmp, granule, name, scene, files)
    (tmp / granule).mkdir(parents=True, exist_ok=True)
    (tmp / granule / "MTD_TL.xml").write_text(_tile_metadata(scene, level), encoding="utf-8")
    metadata = "MTD_MSIL2A.xml" if level == "L2A" else "MTD_MSIL1C.xml"
    (tmp / metadata).write_text(_product_metadata(name, files, offset_dn), encoding="utf-8")
    return _publish(tmp, out_dir / name.safe)


def _write_auxiliary(tmp: Path, granule: Path, name: ProductName, scene: Scene10m, files: list[str]) -> None:
    """The L2A files GDAL's driver looks for besides the bands (aerosol, water vapour, cloud
    and snow probabilities), as zeros: without them it warns about each one it misses."""
    height, width = scene.shape
    for resolution in (10, 20, 60):
        step = resolution // 10
        shape = (-(-height // step), -(-width // step))
        transform = scene.transform @ Affine.scale(step)
        for kind in ("AOT", "WVP"):
            folder = granule / "IMG_DATA" / f"R{resolution}m"
            stem = f"{name.prefix}_{kind}_{resolution}m"
            files.append(str(folder / stem))
            _write(tmp / folder / f"{stem}.jp2", np.zeros(shape, np.uint16), scene.crs, transform, "JP2OpenJPEG")
        if resolution > 10:
            for kind in ("CLDPRB", "SNWPRB"):
                _write(tmp / granule / "QI_DATA" / f"MSK_{kind}_{resolution}m.jp2", np.zeros(shape, np.uint8),
                       scene.crs, transform, "JP2OpenJPEG")


def zip_product(safe: str | Path, out: str | Path | None = None) -> Path:
    """Zip a ``.SAFE`` folder as the Copernicus hub delivers it (``<name>.zip`` holding
    ``<name>.SAFE/...``); return the zip."""
    safe = Path(safe)
    out = Path(out) if out is not None else safe.with_suffix(".zip")
    tmp = out.with_name(f"{TMP_PREFIX}{out.name}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(safe.rglob("*")):
            if file.is_file():
                archive.write(file, Path(safe.name) / file.relative_to(safe))
    os.replace(tmp, out)
    return out


#: File names of one band in a per-band folder: ESA's, the bare code, the archive name.
NAMINGS = {
    "esa": lambda tile, code, resolution, archive: f"{tile}_{code}_{resolution}m",
    "code": lambda tile, code, resolution, archive: code,
    "archive": lambda tile, code, resolution, archive: archive,
}


def write_band_folder(
    out_dir: str | Path, scene: Scene10m, *, naming: str = "esa", driver: str = "COG",
    native_resolution: bool = True, offset_dn: float = 0.0, declare: bool = True,
    scl: np.ndarray | None = None, bands: tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """One file per band in ``out_dir``; return ``{band name: file}``.

    Args:
        naming: ``"esa"`` (``T45RUL_20240115T050659_B04_10m.tif``), ``"code"`` (``B04.tif``)
            or ``"archive"`` (``red.tif``, ``rededge1.tif``, ``swir16.tif``).
        driver: ``"COG"``, ``"GTiff"`` or ``"JP2OpenJPEG"`` (``.jp2``).
        native_resolution: 20 m and 60 m bands at their own resolution (else all at 10 m).
        offset_dn: ``SENTINEL2_ADD_OFFSET_DN`` writes files as baseline 04.00+ stores them.
        declare: GeoTIFFs declare their scale (1e-4) and offset (``offset_dn`` / 10⁴).
        scl: a scene classification to write as ``SCL`` (20 m).
        bands: the bands to write (default: all of the scene).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".jp2" if driver == "JP2OpenJPEG" else ".tif"
    written: dict[str, Path] = {}
    tile = f"{ProductName('L2A', '05.09').prefix}"
    for band in bands or tuple(scene.bands):
        known = SENTINEL2_BY_NAME[band]
        resolution = known.resolution_m if native_resolution else 10
        stem = NAMINGS[naming](tile, known.code, resolution, known.archive_names[0])
        values, transform = _native(scene, band, resolution)
        scale = 1 / SENTINEL2_DN_PER_REFLECTANCE if declare and driver != "JP2OpenJPEG" else None
        written[band] = _write(out_dir / f"{stem}{suffix}", _dn(values, offset_dn), scene.crs, transform,
                               driver, scale, offset_dn / SENTINEL2_DN_PER_REFLECTANCE,
                               nodata=0, description=known.name)
    if scl is not None:
        stem = NAMINGS[naming](tile, "SCL", 20, "scl")
        written["SCL"] = _write(out_dir / f"{stem}{suffix}", scl[::2, ::2].astype(np.uint8), scene.crs,
                                scene.transform @ Affine.scale(2), driver)
    return written


def write_stac_item(
    path: str | Path, files: dict[str, Path], *, level: str = "L2A", baseline: str = "05.09",
    offset_dn: float = 0.0, declare: bool = True, item_id: str = "synthetic-sentinel-2",
) -> Path:
    """A STAC Item at ``path`` whose assets are ``files`` (``{band name or "SCL": file}``,
    hrefs relative to the item), with Earth-Search-like keys (``red``, ``rededge1``,
    ``scl``), ``eo:bands`` and, when ``declare``, ``raster:bands`` scale/offset/nodata."""
    import pystac

    path = Path(path)
    first = next(iter(files.values()))
    with rasterio.open(first) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        epsg = src.crs.to_epsg()
    geometry = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                    [west, north], [west, south]]]}
    item = pystac.Item(
        item_id, geometry, [west, south, east, north],
        datetime=datetime.datetime(2024, 1, 15, 5, 6, 59, tzinfo=datetime.UTC),
        properties={"platform": "sentinel-2b",
                    "s2:product_type": f"S2MSI{level[1:]}", "s2:processing_baseline": baseline,
                    "proj:epsg": epsg},
        stac_extensions=["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                         "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                         "https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
    )
    for band, file in files.items():
        known = SENTINEL2_BY_NAME.get(band)
        extra: dict[str, Any] = {}
        if known is not None:
            extra["eo:bands"] = [{"name": known.code, "common_name": known.common_name,
                                  "center_wavelength": known.central_wavelength_nm / 1000}]
            raster: dict[str, Any] = {"nodata": 0, "data_type": "uint16",
                                      "spatial_resolution": known.resolution_m}
            if declare:
                raster.update(scale=1 / SENTINEL2_DN_PER_REFLECTANCE,
                              offset=offset_dn / SENTINEL2_DN_PER_REFLECTANCE)
            extra["raster:bands"] = [raster]
        key = known.archive_names[0] if known is not None else "scl"
        href = os.path.relpath(file, path.parent)
        item.add_asset(key, pystac.Asset(href, media_type=pystac.MediaType.COG, roles=["data"],
                                         extra_fields=extra))
    payload = item.to_dict(include_self_link=False, transform_hrefs=False)
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
