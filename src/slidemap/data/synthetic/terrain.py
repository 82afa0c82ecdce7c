"""Terrain: fractal DEM in metres, slope by the paper's Eq. 15, topographic illumination.

Mountain relief is a mix of a fractal surface (``P(k) ∝ k**-3.6``) and a *ridged* one
(``1 - |n|``: sharp crests, rounded hollows), then stretched to a relief in metres and
lifted to a base elevation drawn from the range of the Landslide4Sense sites (≈ 100 m in
Iburi to ≈ 3400 m in Gorkha). Some patches get a flat valley floor (the elevation is
compressed below a level): that is where fields, rivers, roads and towns go.
"""

from __future__ import annotations

import numpy as np

from slidemap.data.synthetic.noise import fractal_noise


def mountain_dem(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    relief_m: float,
    base_m: float,
    ridge_weight: float = 0.5,
    floor_quantile: float = 0.0,
) -> np.ndarray:
    """A fractal mountain DEM.

    Args:
        shape: (H, W) pixels.
        relief_m: elevation range over the grid, metres.
        base_m: lowest elevation, metres.
        ridge_weight: 0 = rounded hills, 1 = sharp ridges and V valleys.
        floor_quantile: fraction of the area flattened into a valley floor (0 = none).

    Returns:
        (H, W) float64 elevation in metres.
    """
    smooth = fractal_noise(shape, rng, beta=3.6)
    ridged = 1.0 - np.abs(fractal_noise(shape, rng, beta=3.2))
    z = (1.0 - ridge_weight) * smooth + ridge_weight * 1.5 * ridged
    if floor_quantile > 0:
        level = np.quantile(z, floor_quantile)
        softness = 0.03 * (z.max() - z.min())
        # Smooth maximum: below `level` the ground keeps ~3 % of its relief (an alluvial plain).
        z = level + softness * np.logaddexp(0.0, (z - level) / softness) + 0.03 * (z - level)
    z = (z - z.min()) / max(float(np.ptp(z)), 1e-9)
    return base_m + relief_m * z


def slope_deg(dem_m: np.ndarray, pixel_size_m: float) -> np.ndarray:
    """Slope in degrees, Eq. 15: ``arctan(sqrt((dz/dx)² + (dz/dy)²))``.

    Derivatives are central differences (one-sided at the border).

    Args:
        dem_m: (H, W) elevation, metres.
        pixel_size_m: ground spacing of ``dem_m``, metres.

    Returns:
        (H, W) float64 degrees in [0, 90).
    """
    dz_dy, dz_dx = np.gradient(np.asarray(dem_m, dtype=np.float64), pixel_size_m)
    return np.degrees(np.arctan(np.hypot(dz_dx, dz_dy)))


def illumination(
    dem_m: np.ndarray, pixel_size_m: float, sun_elevation_deg: float, sun_azimuth_deg: float
) -> np.ndarray:
    """Relative direct illumination ``cos(i) / cos(z)`` of each pixel (1 on flat ground).

    ``i`` is the angle between the sun and the surface normal, ``z`` the solar zenith angle;
    rows run north to south and columns west to east. Self-shadowed slopes get 0.

    Returns:
        (H, W) float64, ≥ 0.
    """
    dz_dy, dz_dx = np.gradient(np.asarray(dem_m, dtype=np.float64), pixel_size_m)
    zenith = np.radians(90.0 - sun_elevation_deg)
    azimuth = np.radians(sun_azimuth_deg)
    # Unit vector to the sun in (east, north, up); rows grow southwards so north = -dz/drow.
    sun = np.array(
        [np.sin(zenith) * np.sin(azimuth), np.sin(zenith) * np.cos(azimuth), np.cos(zenith)]
    )
    normal_e, normal_n = -dz_dx, dz_dy
    norm = np.sqrt(normal_e**2 + normal_n**2 + 1.0)
    cos_i = (normal_e * sun[0] + normal_n * sun[1] + sun[2]) / norm
    return np.clip(cos_i, 0.0, None) / np.cos(zenith)
