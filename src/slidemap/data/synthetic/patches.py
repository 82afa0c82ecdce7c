"""Synthetic Landslide4Sense patches and the dataset writer (official layout).

Each patch is an independent little world: its own DEM, land cover, landslides, sky. Patch
``i`` of seed ``s`` is drawn from ``numpy.random.default_rng([s, i])``, so it is the same
bytes whatever the number of patches asked for, and the dataset is reproducible.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from slidemap.bands import BandSet, get_band_set
from slidemap.data.l4s import (
    IMAGE_DIR,
    IMAGE_KEY,
    MASK_DIR,
    MASK_KEY,
    OFFICIAL_SPLIT_DIRS,
    SPLITS,
    image_file_name,
    mask_file_name,
    write_h5,
)
from slidemap.data.synthetic.conditions import draw_conditions
from slidemap.data.synthetic.landslides import place_landslides
from slidemap.data.synthetic.noise import smooth_noise
from slidemap.data.synthetic.render import FIELD_SCALES_PX, Tile, render_tile
from slidemap.data.synthetic.terrain import mountain_dem, slope_deg
from slidemap.errors import ConfigError
from slidemap.io.atomic import clean_stale_temporaries, write_text_atomic

log = logging.getLogger(__name__)

PIXEL_SIZE_M = 10.0
#: Extra terrain around a patch, pixels: landslides may start outside and run in, and
#: smoothed slope has context at the border.
MARGIN_PX = 16
DEM_SMOOTHING_PX = 1.0
#: Folder of each split in the official layout, in writing order.
SPLIT_DIRS: tuple[str, ...] = tuple(OFFICIAL_SPLIT_DIRS[split] for split in SPLITS)
#: Written last into the root: what was generated and how many landslide pixels it holds.
SUMMARY_FILE = "synthetic.json"
GENERATOR_VERSION = 1


@dataclass
class SyntheticPatch:
    """One generated patch, in stored (Landslide4Sense) and physical units.

    Attributes:
        image: (H, W, 14) float64 Landslide4Sense stored units (B1–B12, slope, DEM).
        mask: (H, W) uint8 {0, 1}.
        landcover: (H, W) uint8 :class:`~slidemap.data.synthetic.landcover.LandCover`.
        slope_deg: (H, W) float64 degrees.
        dem_m: (H, W) float64 metres.
    """

    image: np.ndarray
    mask: np.ndarray
    landcover: np.ndarray
    slope_deg: np.ndarray
    dem_m: np.ndarray


def to_stored_units(
    dn: np.ndarray, slope: np.ndarray, dem_m: np.ndarray, band_set: BandSet
) -> np.ndarray:
    """Sentinel-2 DN, slope and DEM → one (H, W, 14) float64 image in the band set's stored units.

    Values are quantised as in the real files: reflectance to 1e-4 (the DN), slope to whole
    degrees, elevation to whole metres; then divided by ``physical_per_unit``.

    Args:
        dn: (12, H, W) uint16 reflectance × 10 000.
        slope: (H, W) degrees.
        dem_m: (H, W) metres.
    """
    physical = np.concatenate([dn * 1e-4, np.rint(slope)[None], np.rint(dem_m)[None]])
    factors = np.array([b.physical_per_unit for b in band_set.bands])
    return np.moveaxis(physical / factors[:, None, None], 0, -1)


def synth_patch(
    rng: np.random.Generator, size: int = 128, band_set: BandSet | None = None
) -> SyntheticPatch:
    """Generate one patch of ``size``×``size`` 10 m pixels (Landslide4Sense ``l4s14`` bands)."""
    band_set = band_set or get_band_set("l4s14")
    cond = draw_conditions(rng)
    n = size + 2 * MARGIN_PX
    dem = mountain_dem(
        (n, n),
        rng,
        relief_m=cond.relief_m,
        base_m=cond.base_m,
        ridge_weight=cond.ridge_weight,
        floor_quantile=cond.floor_quantile,
    )
    # The Landslide4Sense DEM comes from a coarser sensor (ALOS PALSAR, 12.5 m): no 10 m roughness.
    dem = ndimage.gaussian_filter(dem, DEM_SMOOTHING_PX, mode="nearest")
    slope = slope_deg(dem, PIXEL_SIZE_M)
    smooth_slope = ndimage.gaussian_filter(slope, 6.0, mode="nearest")
    inner = (slice(MARGIN_PX, MARGIN_PX + size),) * 2
    fields = {
        name: smooth_noise((size, size), rng, scale) for name, scale in FIELD_SCALES_PX.items()
    }

    eligible = (slope > 25.0) & (smooth_slope > cond.floor_slope_deg + 4.0)
    eligible[: MARGIN_PX - 4] = eligible[-MARGIN_PX + 4 :] = False
    eligible[:, : MARGIN_PX - 4] = eligible[:, -MARGIN_PX + 4 :] = False
    slides = place_landslides(
        dem,
        slope,
        eligible,
        rng,
        pixel_size_m=PIXEL_SIZE_M,
        target_area_px=cond.landslide_fraction * size * size,
    )
    halo = (slice(MARGIN_PX - 1, MARGIN_PX + size + 1),) * 2
    tile = Tile(dem[halo], smooth_slope[inner], fields, (MARGIN_PX, MARGIN_PX), PIXEL_SIZE_M)
    out = render_tile(tile, slides, cond, rng)
    image = to_stored_units(out.dn, out.slope_deg, out.dem_m, band_set)
    return SyntheticPatch(image, out.mask, out.landcover, out.slope_deg, out.dem_m)


def split_counts(
    n_patches: int, split_fractions: tuple[float, float, float]
) -> tuple[int, int, int]:
    """Patches per split (train, valid, test): rounded, each ≥ 1 when ``n_patches`` ≥ 3."""
    fractions = np.asarray(split_fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ConfigError(
            f"split_fractions must be three non-negative numbers summing to 1, got {split_fractions}"
        )
    if n_patches < 3:
        raise ConfigError(f"n_patches must be at least 3 (one per split), got {n_patches}")
    valid = max(1, int(round(n_patches * fractions[1])))
    test = max(1, int(round(n_patches * fractions[2])))
    return n_patches - valid - test, valid, test


def generate_dataset(
    out: str | Path,
    n_patches: int = 240,
    seed: int = 0,
    size: int = 128,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    *,
    image_dtype: str = "float32",
) -> Path:
    """Write a synthetic dataset in the official Landslide4Sense layout.

    ``out/TrainData/img/image_<n>.h5`` (key ``img``, (size, size, 14), Landslide4Sense
    stored units) and ``out/TrainData/mask/mask_<n>.h5`` (key ``mask``, (size, size) uint8
    {0, 1}), the same under ``ValidData`` and ``TestData`` (with masks, for evaluation),
    ``<n>`` counting from 1 in each split; then ``out/synthetic.json`` (parameters and
    landslide fractions). Every file is written atomically.

    Args:
        image_dtype: ``"float32"`` (default: half the disk of the official float64 and
            exactly the values a reader gets after its float32 conversion) or ``"float64"``.

    Returns:
        ``out`` as a :class:`Path`.
    """
    if image_dtype not in ("float32", "float64"):
        raise ConfigError(f"image_dtype must be 'float32' or 'float64', got {image_dtype!r}")
    if size < 32:
        raise ConfigError(f"patch size must be at least 32 pixels, got {size}")
    counts = split_counts(n_patches, split_fractions)
    root = Path(out)
    band_set = get_band_set("l4s14")
    summary: dict[str, object] = {
        "generator": "slidemap.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "band_set": band_set.name,
        "image_dtype": image_dtype,
        "splits": {},
    }
    index = 0
    for split_dir, count in zip(SPLIT_DIRS, counts, strict=True):
        landslide_pixels = 0
        for folder in (IMAGE_DIR, MASK_DIR):
            (root / split_dir / folder).mkdir(parents=True, exist_ok=True)
            clean_stale_temporaries(root / split_dir / folder)
        for number in range(1, count + 1):
            patch = synth_patch(np.random.default_rng([seed, index]), size, band_set)
            index += 1
            write_h5(root / split_dir / IMAGE_DIR / image_file_name(str(number)), IMAGE_KEY,
                     patch.image.astype(image_dtype))
            write_h5(root / split_dir / MASK_DIR / mask_file_name(str(number)), MASK_KEY, patch.mask)
            landslide_pixels += int(patch.mask.sum())
        summary["splits"][split_dir] = {  # type: ignore[index]
            "patches": count,
            "landslide_fraction": landslide_pixels / (count * size * size),
        }
        log.info("%s: %d patches", split_dir, count)
    total = sum(s["landslide_fraction"] * s["patches"] for s in summary["splits"].values())  # type: ignore[attr-defined]
    summary["landslide_fraction"] = total / n_patches
    write_text_atomic(root / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return root


def synthetic_summary(path: str | Path) -> Path | None:
    """The :data:`SUMMARY_FILE` of the synthetic dataset holding ``path`` (its root or one of
    its split folders), or ``None`` for data slidemap did not generate."""
    folder = Path(path)
    for candidate in (folder, folder.parent):
        if (candidate / SUMMARY_FILE).is_file():
            return candidate / SUMMARY_FILE
    return None
