"""Polygon output: GeoPackage and GeoJSON through pyogrio, written atomically.

GeoPackage keeps the raster's CRS. GeoJSON is written in EPSG:4326 (longitude, latitude),
as RFC 7946 requires, so any GIS or web map reads it without guessing; the CRS of the
source raster is kept in the GeoPackage and in ``summary.json``. Attribute values are
the same in both files (areas and lengths are computed before reprojection, in metres).
Both files name their layer (``landslides`` by default), never after the temporary file
they are written to, so ``ogr2ogr`` converts them under that name.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.crs import CRS

from slidemap.io.atomic import atomic_path

#: CRS of GeoJSON output (RFC 7946 §4).
GEOJSON_CRS = "EPSG:4326"
#: GeoPackage version written: 1.2 is read without a warning by every GDAL since 2.2 (and
#: the QGIS/ArcGIS built on them); GDAL 3.10's default, 1.4, makes older GDALs warn.
GPKG_VERSION = "1.2"


def write_polygons(
    path: str | Path,
    geometries: Sequence[shapely.Geometry],
    attributes: Mapping[str, Sequence[Any] | np.ndarray],
    crs: CRS,
    *,
    layer: str = "landslides",
) -> Path:
    """Write polygons with one attribute row each to ``path`` (``.gpkg`` or ``.geojson``).

    Args:
        path: output file; the suffix picks the driver. GeoJSON is reprojected to EPSG:4326.
        geometries: polygons in ``crs`` coordinates.
        attributes: columns, name -> one value per polygon (numbers or strings); the
            columns are kept (typed) even when there are no polygons.
        crs: CRS of ``geometries``.
        layer: layer name (GeoPackage layer, GeoJSON FeatureCollection ``name``).

    An empty ``geometries`` writes a valid, empty layer with the attribute columns.
    """
    path = Path(path)
    fields = {name: np.asarray(values) for name, values in attributes.items()}
    bad = {name: len(v) for name, v in fields.items() if len(v) != len(geometries)}
    if bad:
        raise ValueError(f"{len(geometries)} geometries but attribute lengths {bad}")
    geojson = path.suffix.lower() in (".geojson", ".json")
    driver = "GeoJSON" if geojson else "GPKG"
    out_crs = GEOJSON_CRS if geojson else crs.to_wkt()
    geoms = list(geometries)
    if geojson and geoms and CRS.from_user_input(crs) != CRS.from_user_input(GEOJSON_CRS):
        geoms = to_lon_lat(geoms, crs)
    wkb = shapely.to_wkb(np.asarray(geoms, dtype=object))  # (n,) object array of bytes
    options: dict[str, Any] = (
        {"layer_options": {"RFC7946": "YES"}} if geojson
        else {"dataset_options": {"VERSION": GPKG_VERSION}}
    )
    with atomic_path(path) as tmp:
        try:
            pyogrio.raw.write(
                tmp,
                geometry=wkb,
                field_data=list(fields.values()),
                fields=list(fields),
                crs=out_crs,
                geometry_type="Polygon" if all(g.geom_type == "Polygon" for g in geoms) else "MultiPolygon",
                driver=driver,
                encoding="UTF-8",
                layer=layer,
                **options,
            )
        except (DataSourceError, DataLayerError) as exc:  # a full disk, a read-only folder...
            raise OSError(errno.EIO, " ".join(str(exc).split()) or type(exc).__name__) from None
    return path


def to_lon_lat(geometries: Sequence[shapely.Geometry], crs: Any) -> list[shapely.Geometry]:
    """``geometries`` from ``crs`` to WGS 84 longitude/latitude (EPSG:4326, x = longitude),
    every vertex of every geometry in one PROJ call; repaired where reprojection made one
    invalid."""
    import pyproj

    transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(CRS.from_user_input(crs).to_wkt()),
                                              pyproj.CRS.from_user_input(GEOJSON_CRS), always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    moved = shapely.transform(np.asarray(geometries, dtype=object), project)
    return list(shapely.make_valid(moved))


def read_polygons(path: str | Path) -> tuple[list[shapely.Geometry], dict[str, np.ndarray], str]:
    """Read back ``(geometries, attribute columns, crs WKT)`` (tests, users' scripts)."""
    meta, _, geometry, field_data = pyogrio.raw.read(path)
    geoms = list(shapely.from_wkb(geometry)) if geometry is not None else []
    columns = {name: np.asarray(values) for name, values in zip(meta["fields"], field_data, strict=True)}
    return geoms, columns, meta["crs"]
