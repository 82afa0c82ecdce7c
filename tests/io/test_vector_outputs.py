"""GeoJSON polygons are the GeoPackage's, reprojected to WGS 84 longitude/latitude: every
vertex checked against GDAL's own reprojection (rasterio.warp), holes and several polygons
included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.warp import transform

from slidemap.io.vector import read_polygons, write_polygons

UTM_33N = CRS.from_epsg(32633)


def test_geojson_vertices_are_the_geopackage_vertices_in_lon_lat(tmp_path: Path) -> None:
    holed = shapely.Polygon(
        [(500_000, 5_200_000), (500_300, 5_200_000), (500_300, 5_200_200), (500_000, 5_200_200)],
        holes=[[(500_100, 5_200_050), (500_200, 5_200_050), (500_200, 5_200_150), (500_100, 5_200_150)]])
    triangle = shapely.Polygon([(610_000, 5_300_000), (610_500, 5_300_000), (610_250, 5_300_400)])
    attributes = {"id": np.array([1, 2]), "area_m2": np.array([holed.area, triangle.area])}
    write_polygons(tmp_path / "l.gpkg", [holed, triangle], attributes, UTM_33N)
    write_polygons(tmp_path / "l.geojson", [holed, triangle], attributes, UTM_33N)

    projected, _, _ = read_polygons(tmp_path / "l.gpkg")
    geographic, columns, _ = read_polygons(tmp_path / "l.geojson")
    assert list(columns["id"]) == [1, 2]
    for utm, lonlat in zip(projected, geographic, strict=True):
        rings_utm = [utm.exterior, *utm.interiors]
        rings_ll = [lonlat.exterior, *lonlat.interiors]
        assert len(rings_ll) == len(rings_utm)
        for ring_utm, ring_ll in zip(rings_utm, rings_ll, strict=True):
            x, y = np.asarray(ring_utm.coords).T
            lon, lat = transform(UTM_33N, "EPSG:4326", x, y)
            # the GeoJSON writer may change a ring's winding (RFC 7946), not its vertices
            got, want = np.asarray(ring_ll.coords), np.column_stack([lon, lat])
            assert len(got) == len(want)
            # degrees; RFC 7946 GeoJSON keeps 7 decimals (half a unit: 5e-8)
            distance = np.abs(got[:, None, :] - want[None, :, :]).max(axis=2)
            assert distance.min(axis=1).max() <= 5.1e-8 and distance.min(axis=0).max() <= 5.1e-8
        assert 14.9 < lonlat.centroid.x < 16.5 and 46.0 < lonlat.centroid.y < 48.0  # lon first
