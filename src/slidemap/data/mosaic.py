"""Landslide4Sense patches laid side by side as a georeferenced scene.

The real patches carry no georeferencing, but their values can still be checked as a scene
would be (the radiometry check of ``slidemap predict``, benchmarks): :func:`write_patch_mosaic`
converts them from stored units to physical ones and writes the Sentinel-2 bands as a float32
reflectance GeoTIFF (bands named ``B1``..``B12``) and the elevation as a DEM GeoTIFF, on an
arbitrary 10 m UTM grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from slidemap.bands import ELEVATION_ROLES, BandSet, get_band_set
from slidemap.data.l4s import read_image
from slidemap.io.atomic import atomic_path


def write_patch_mosaic(files: Sequence[str | Path], out_dir: str | Path,
                       band_set: str | BandSet = "l4s14") -> dict[str, Path]:
    """Write ``image_<id>.h5`` patches side by side as ``mosaic.tif`` (reflectance bands) and
    ``mosaic_dem.tif`` (metres) in ``out_dir``; return ``{"image": ..., "dem": ...}``.

    Raises:
        InputError: an unreadable patch (from :func:`~slidemap.data.l4s.read_image`).
    """
    band_set = get_band_set(band_set)
    stacked = np.concatenate([read_image(f, len(band_set)) for f in files], axis=2)  # (C, H, sum W)
    physical = stacked * np.array([b.physical_per_unit for b in band_set.bands], np.float32)[:, None, None]
    reflectance = [i for i, b in enumerate(band_set.bands) if b.unit == "reflectance"]
    elevation = band_set.index(*ELEVATION_ROLES)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "height": stacked.shape[1], "width": stacked.shape[2], "dtype": "float32",
               "crs": "EPSG:32645", "transform": from_origin(500_000, 4_000_000, 10, 10)}
    paths = {"image": out_dir / "mosaic.tif", "dem": out_dir / "mosaic_dem.tif"}
    with atomic_path(paths["image"]) as tmp, rasterio.open(tmp, "w", count=len(reflectance), **profile) as dst:
        for i, channel in enumerate(reflectance, start=1):
            dst.write(physical[channel], i)
            dst.set_band_description(i, band_set.bands[channel].name)
    with atomic_path(paths["dem"]) as tmp, rasterio.open(tmp, "w", count=1, **profile) as dst:
        dst.write(physical[elevation], 1)
    return paths
