"""Terrain features from an elevation surface (paper §2.4, Eq. 15), vectorised numpy.

Inputs are ``(H, W)`` elevation arrays in **metres** with rows running north → south and
columns west → east (the usual raster orientation), and the pixel spacing ``pixel_size_m``
in metres (square pixels). Outputs are ``(H, W) float32``, finite for finite input.

Derivatives are central differences (one-sided at the border, ``numpy.gradient``), so a patch
border is exact for planar terrain and approximate elsewhere; give the functions a halo of
context pixels (``Feature.halo_px``) when tiling a large scene.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import uniform_filter

#: Standard hillshade illumination: sun from the north-west, 45° above the horizon.
HILLSHADE_AZIMUTH_DEG = 315.0
HILLSHADE_ALTITUDE_DEG = 45.0
#: Default window of :func:`relief` in pixels (odd).
RELIEF_WINDOW_PX = 15
#: Context a window needs around it for exact gradients at its edges (slope, hillshade):
#: central differences reach one pixel out.
GRADIENT_HALO_PX = 1


def _check_pixel_size(pixel_size_m: float) -> float:
    size = float(pixel_size_m)
    if not math.isfinite(size) or size <= 0:
        raise ValueError(f"pixel_size_m must be a positive number of metres, got {pixel_size_m!r}")
    return size


def elevation_gradient(elevation_m: ArrayLike, pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Partial derivatives ``(dz/dx, dz/dy)`` of an ``(H, W)`` surface, metres per metre, float64.

    ``x`` runs along columns (east), ``y`` along rows (south). Central differences inside,
    one-sided differences on the border; an axis of length 1 has derivative 0.
    """
    z = np.asarray(elevation_m, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"elevation must be (H, W), got shape {z.shape}")
    size = _check_pixel_size(pixel_size_m)
    derivatives = []
    for axis in (1, 0):
        if z.shape[axis] < 2:
            derivatives.append(np.zeros_like(z))
        else:
            derivatives.append(np.gradient(z, size, axis=axis))
    dz_dx, dz_dy = derivatives
    return dz_dx, dz_dy


def slope_deg(elevation_m: ArrayLike, pixel_size_m: float) -> np.ndarray:
    """Slope, Eq. 15: ``arctan(sqrt((dz/dx)² + (dz/dy)²))`` in degrees, [0, 90).

    Args:
        elevation_m: ``(H, W)`` elevation, metres.
        pixel_size_m: pixel spacing, metres.

    Returns:
        ``(H, W) float32`` degrees.
    """
    dz_dx, dz_dy = elevation_gradient(elevation_m, pixel_size_m)
    return np.degrees(np.arctan(np.hypot(dz_dx, dz_dy))).astype(np.float32)


def hillshade(
    elevation_m: ArrayLike,
    pixel_size_m: float,
    azimuth_deg: float = HILLSHADE_AZIMUTH_DEG,
    altitude_deg: float = HILLSHADE_ALTITUDE_DEG,
) -> np.ndarray:
    """Shaded relief: cosine of the angle between the surface normal and the sun, in [0, 1].

    ``hillshade = max(0, n · s)`` with ``n`` the unit normal of ``z(x, y)`` and ``s`` the unit
    vector towards a sun at ``azimuth_deg`` (clockwise from north) and ``altitude_deg`` above
    the horizon; this is the standard (ESRI/GDAL) hillshade divided by 255. Flat ground gives
    ``sin(altitude)`` (0.707 at 45°).

    Args:
        elevation_m: ``(H, W)`` elevation, metres. pixel_size_m: spacing, metres.

    Returns:
        ``(H, W) float32`` in [0, 1].
    """
    dz_dx, dz_dy = elevation_gradient(elevation_m, pixel_size_m)
    dz_deast, dz_dnorth = dz_dx, -dz_dy  # rows run southwards
    azimuth, altitude = math.radians(azimuth_deg), math.radians(altitude_deg)
    sun_east = math.cos(altitude) * math.sin(azimuth)
    sun_north = math.cos(altitude) * math.cos(azimuth)
    with np.errstate(over="ignore", invalid="ignore"):
        lit = (math.sin(altitude) - dz_deast * sun_east - dz_dnorth * sun_north) / np.sqrt(
            1.0 + dz_deast**2 + dz_dnorth**2
        )
    return np.clip(np.nan_to_num(lit, nan=0.0), 0.0, 1.0).astype(np.float32)


def relief(elevation_m: ArrayLike, window_px: int = RELIEF_WINDOW_PX) -> np.ndarray:
    """Local relief: elevation minus its mean over a ``window_px × window_px`` window, metres.

    Positive on ridges and convex scarps, negative in gullies and deposits; independent of
    the absolute altitude. The border replicates the edge (``mode="nearest"``).

    Args:
        elevation_m: ``(H, W)`` elevation, metres.
        window_px: odd window side in pixels; needs a halo of ``window_px // 2`` pixels.

    Returns:
        ``(H, W) float32`` metres.
    """
    if window_px < 1 or window_px % 2 == 0:
        raise ValueError(f"window_px must be a positive odd number, got {window_px}")
    z = np.asarray(elevation_m, dtype=np.float64)
    centre = float(np.median(z)) if z.size else 0.0
    shifted = z - centre  # keeps the running sums small: exact for metres-scale relief
    return (shifted - uniform_filter(shifted, size=window_px, mode="nearest")).astype(np.float32)
