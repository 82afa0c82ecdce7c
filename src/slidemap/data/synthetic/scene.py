"""A large synthetic scene as GeoTIFFs: Sentinel-2 image, a coarser DEM, and labels.

``image.tif``  12 bands B1–B12, uint16 reflectance × 10 000, 10 m, nodata 0 (a corner of
               the scene is outside the swath, as at the edge of a Sentinel-2 tile).
``dem.tif``    float32 metres on a 30 m grid covering the same extent (so users' pipelines
               must resample it, as with SRTM/Copernicus DEMs).
``labels.tif`` uint8 on the image grid: 1 = landslide, 0 = background, 255 = nodata.

All three share a UTM CRS (EPSG:32645, Nepal) and the same upper-left corner.

Memory: the 30 m DEM, its slope and the long-range random fields (on a 60 m grid) are held
for the whole scene; the image is rendered and written in 480 × 480 blocks. Peak memory is
dominated by the FFT that synthesises the DEM on a grid twice the DEM's size: estimated
≈ 0.8 GB at 8192² (not measured), independent of the number of bands.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

from slidemap.data.synthetic.conditions import draw_conditions
from slidemap.data.synthetic.landslides import Landslide, place_landslides
from slidemap.data.synthetic.noise import cubic_resample, fine_coordinates, smooth_noise
from slidemap.data.synthetic.render import (
    FIELD_SCALES_PX,
    LOCAL_FIELDS,
    Tile,
    local_fields,
    render_tile,
)
from slidemap.data.synthetic.spectra import BAND_NAMES
from slidemap.data.synthetic.terrain import mountain_dem, slope_deg
from slidemap.errors import ConfigError
from slidemap.io.atomic import atomic_path

PIXEL_SIZE_M = 10.0
DEM_FACTOR = 3  # 30 m DEM
FIELD_FACTOR = 6  # long-range fields on a 60 m grid
BLOCK_PX = 480  # multiple of 6: 60 m bands and the DEM grid line up across blocks
CRS = "EPSG:32645"
ORIGIN_XY = (300_000.0, 3_100_000.0)  # upper-left corner, metres (UTM 45N)
MEAN_SLOPE_DEG = 22.0  # as the Landslide4Sense sites (real patches: 23° on average)
LANDSLIDE_FRACTION = 0.03
NODATA_CORNER = 0.12  # the triangle below this fraction of the diagonal is outside the swath


#: the files of a synthetic scene, by key.
SCENE_FILES: dict[str, str] = {"image": "image.tif", "dem": "dem.tif", "labels": "labels.tif"}


def generate_scene(out: str | Path, size_px: int = 2048, seed: int = 0) -> dict[str, Path]:
    """Write ``image.tif``, ``dem.tif`` and ``labels.tif`` of a ``size_px``² scene into ``out``.

    Returns:
        ``{"image": ..., "dem": ..., "labels": ...}`` paths.
    """
    import rasterio
    from rasterio.transform import from_origin

    if size_px < 64:
        raise ConfigError(f"scene size must be at least 64 pixels, got {size_px}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1_000_003])
    cond = draw_conditions(rng, landslide_fraction=LANDSLIDE_FRACTION)

    n_dem = math.ceil(size_px / DEM_FACTOR) + 1
    dem_res = PIXEL_SIZE_M * DEM_FACTOR
    dem = mountain_dem(
        (n_dem, n_dem), rng, relief_m=1.0, base_m=0.0, ridge_weight=0.5, floor_quantile=0.3
    )
    # Scale relief so that the mean slope is that of the real sites, whatever the scene size.
    mean_gradient = float(np.mean(np.tan(np.radians(slope_deg(dem, dem_res)))))
    dem = cond.base_m + dem * (np.tan(np.radians(MEAN_SLOPE_DEG)) / max(mean_gradient, 1e-12))
    slope = slope_deg(dem, dem_res)
    smooth_slope = ndimage.gaussian_filter(slope, 6.0 / DEM_FACTOR, mode="nearest")
    eligible = (slope > 25.0) & (smooth_slope > cond.floor_slope_deg + 4.0)
    slides = place_landslides(
        dem,
        slope,
        eligible,
        rng,
        pixel_size_m=dem_res,
        target_area_px=LANDSLIDE_FRACTION * (size_px / DEM_FACTOR) ** 2,
        size_scale=1.0 / DEM_FACTOR,
        max_count=10_000_000,
    )
    by_block = _bin_by_block([s.scaled(DEM_FACTOR) for s in slides], size_px)

    n_field = math.ceil(size_px / FIELD_FACTOR) + 1
    long_fields = {
        name: smooth_noise((n_field, n_field), rng, scale / FIELD_FACTOR).astype(np.float32)
        for name, scale in FIELD_SCALES_PX.items()
        if name not in LOCAL_FIELDS
    }

    paths = {key: out / name for key, name in SCENE_FILES.items()}
    common = {
        "driver": "GTiff",
        "crs": CRS,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    image_profile = common | {
        "width": size_px,
        "height": size_px,
        "count": 12,
        "dtype": "uint16",
        "nodata": 0,
        "predictor": 2,
        "transform": from_origin(*ORIGIN_XY, PIXEL_SIZE_M, PIXEL_SIZE_M),
    }
    label_profile = image_profile | {"count": 1, "dtype": "uint8", "nodata": 255, "predictor": 1}
    dem_profile = common | {
        "width": n_dem,
        "height": n_dem,
        "count": 1,
        "dtype": "float32",
        "predictor": 3,
        "transform": from_origin(*ORIGIN_XY, dem_res, dem_res),
    }
    with (
        atomic_path(paths["image"]) as image_tmp,
        atomic_path(paths["labels"]) as labels_tmp,
        rasterio.open(image_tmp, "w", **image_profile) as image,
        rasterio.open(labels_tmp, "w", **label_profile) as labels,
    ):
        for band, name in enumerate(BAND_NAMES, start=1):
            image.set_band_description(band, name)
        image.update_tags(
            units="reflectance x 10000", generator="slidemap.data.synthetic", seed=str(seed)
        )
        labels.set_band_description(1, "landslide")
        for r0 in range(0, size_px, BLOCK_PX):
            for c0 in range(0, size_px, BLOCK_PX):
                h, w = min(BLOCK_PX, size_px - r0), min(BLOCK_PX, size_px - c0)
                block_rng = np.random.default_rng([seed, r0, c0])
                tile = _tile(dem, smooth_slope, long_fields, (r0, c0), (h, w), block_rng)
                rendered = render_tile(
                    tile, by_block[(r0 // BLOCK_PX, c0 // BLOCK_PX)], cond, block_rng
                )
                outside = _outside_swath((r0, c0), (h, w), size_px)
                rendered.dn[:, outside] = 0
                rendered.mask[outside] = 255
                window = rasterio.windows.Window(c0, r0, w, h)
                image.write(rendered.dn, window=window)
                labels.write(rendered.mask, 1, window=window)
    with atomic_path(paths["dem"]) as dem_tmp, rasterio.open(dem_tmp, "w", **dem_profile) as dst:
        dst.write(dem.astype(np.float32), 1)
        dst.set_band_description(1, "elevation_m")
    return paths


def _tile(
    dem: np.ndarray,
    smooth_slope: np.ndarray,
    long_fields: dict[str, np.ndarray],
    origin_rc: tuple[int, int],
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> Tile:
    """Sample the scene-wide grids at one block of the 10 m image grid."""
    (r0, c0), (h, w) = origin_rc, shape
    halo_rows = fine_coordinates(r0 - 1, h + 2, DEM_FACTOR)
    halo_cols = fine_coordinates(c0 - 1, w + 2, DEM_FACTOR)
    rows, cols = fine_coordinates(r0, h, DEM_FACTOR), fine_coordinates(c0, w, DEM_FACTOR)
    frows, fcols = fine_coordinates(r0, h, FIELD_FACTOR), fine_coordinates(c0, w, FIELD_FACTOR)
    fields = {name: cubic_resample(grid, frows, fcols) for name, grid in long_fields.items()}
    fields |= local_fields(shape, rng)
    return Tile(
        dem_m=cubic_resample(dem, halo_rows, halo_cols),
        smooth_slope_deg=cubic_resample(smooth_slope, rows, cols),
        fields=fields,
        origin_rc=origin_rc,
        pixel_size_m=PIXEL_SIZE_M,
    )


def _bin_by_block(
    slides: list[Landslide], size_px: int
) -> defaultdict[tuple[int, int], list[Landslide]]:
    """Landslides listed under every block their bounding box touches."""
    n_blocks = math.ceil(size_px / BLOCK_PX)
    by_block: defaultdict[tuple[int, int], list[Landslide]] = defaultdict(list)
    for slide in slides:
        r0, c0, r1, c1 = slide.bbox()
        for br in range(max(r0 // BLOCK_PX, 0), min((r1 - 1) // BLOCK_PX, n_blocks - 1) + 1):
            for bc in range(max(c0 // BLOCK_PX, 0), min((c1 - 1) // BLOCK_PX, n_blocks - 1) + 1):
                by_block[(br, bc)].append(slide)
    return by_block


def _outside_swath(origin_rc: tuple[int, int], shape: tuple[int, int], size_px: int) -> np.ndarray:
    """(H, W) bool: the lower-left corner triangle of the scene that has no data."""
    rows = np.arange(origin_rc[0], origin_rc[0] + shape[0])[:, None]
    cols = np.arange(origin_rc[1], origin_rc[1] + shape[1])[None, :]
    return (size_px - rows) + cols < NODATA_CORNER * 2 * size_px
