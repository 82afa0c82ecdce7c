"""Spectral indices (paper §2.4, Eq. 14, 16–18) as pure, vectorised numpy functions.

Every function takes ``(H, W)`` arrays (any shape works, as long as they broadcast) in
**physical units** — surface reflectance 0–1 for Sentinel-2, digital numbers 0–255 for 8-bit
RGB — and returns ``float32`` of the broadcast shape. Ratios of stored values are wrong when
bands are stored with different scale factors (Landslide4Sense's are), so callers convert with
``Band.physical_per_unit`` first; :mod:`slidemap.features.registry` does that.

Safety: arithmetic runs in float64 (no overflow for any finite float32 input); where a
denominator is within ``eps`` of zero the index is defined as 0 (no signal either way); and
each index is clipped to the range it has for non-negative inputs, so negative reflectances
(atmospheric-correction noise) near a zero sum cannot produce huge values. Finite input
therefore always gives finite output.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: Denominators with ``|den| <= EPS`` give an index of 0 (physical units, e.g. reflectance).
EPS = 1e-6


def safe_ratio(
    numerator: ArrayLike, denominator: ArrayLike, lo: float, hi: float, eps: float = EPS
) -> np.ndarray:
    """``numerator / denominator`` clipped to ``[lo, hi]``; 0 where ``|denominator| <= eps``.

    Args:
        numerator, denominator: broadcastable arrays, any real dtype.
        lo, hi: the clip range.
        eps: threshold under which the denominator counts as zero.

    Returns:
        float32 array of the broadcast shape; finite for finite input.
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    num, den = np.broadcast_arrays(num, den)
    defined = np.abs(den) > eps
    out = np.zeros(num.shape, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        np.divide(num, den, out=out, where=defined)
    return np.clip(np.nan_to_num(out, nan=0.0), lo, hi).astype(np.float32)


def normalized_difference(a: ArrayLike, b: ArrayLike, eps: float = EPS) -> np.ndarray:
    """``(a − b) / (a + b)`` in [−1, 1]; 0 where ``|a + b| <= eps``. float32."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    return safe_ratio(a64 - b64, a64 + b64, -1.0, 1.0, eps)


def ndvi(nir: ArrayLike, red: ArrayLike) -> np.ndarray:
    """Normalized Difference Vegetation Index, Eq. 14: ``(NIR − R) / (NIR + R)``, [−1, 1].

    High over dense green vegetation; landslide scars, which strip it, drop towards 0.
    Sentinel-2: NIR = B8, R = B4 (reflectance).
    """
    return normalized_difference(nir, red)


def ndmi(nir: ArrayLike, swir1: ArrayLike) -> np.ndarray:
    """Normalized Difference Moisture Index, Eq. 16: ``(NIR − SWIR1) / (NIR + SWIR1)``, [−1, 1].

    Sentinel-2: NIR = B8, SWIR1 = B11 (1.6 µm).
    """
    return normalized_difference(nir, swir1)


def gndvi(nir: ArrayLike, green: ArrayLike) -> np.ndarray:
    """Green NDVI, Eq. 17: ``(NIR − G) / (NIR + G)``, [−1, 1]. Sentinel-2: B8, B3."""
    return normalized_difference(nir, green)


def bsi(swir1: ArrayLike, red: ArrayLike, nir: ArrayLike, blue: ArrayLike) -> np.ndarray:
    """Bare Soil Index, Eq. 18: ``((SWIR1 + R) − (NIR + B)) / ((SWIR1 + R) + (NIR + B))``, [−1, 1].

    Positive over exposed soil and rock (fresh landslide scars). Sentinel-2: B11, B4, B8, B2.
    """
    soil = np.asarray(swir1, dtype=np.float64) + np.asarray(red, dtype=np.float64)
    vegetation = np.asarray(nir, dtype=np.float64) + np.asarray(blue, dtype=np.float64)
    return normalized_difference(soil, vegetation)


def brightness(*bands: ArrayLike) -> np.ndarray:
    """Surface brightness: the mean of the given reflectances (paper §2.4, "Brightness").

    The paper combines "multiple bands" without giving a formula. slidemap uses the plain mean
    of the visible and near-infrared reflectances, ``(B + G + R + NIR) / 4`` (Sentinel-2 B2, B3,
    B4, B8), because it (1) stays in reflectance units and in the range of its inputs, so it is
    comparable across scenes and sensors; (2) needs no sensor-specific coefficients, unlike the
    Tasseled-Cap brightness whose weights differ between Landsat, Sentinel-2 L1C and L2A; and
    (3) uses bands every multispectral sensor has. Fresh scars (bare soil and rock) are
    brighter than the vegetation around them in all four bands, which is the contrast the
    feature is meant to carry.

    Args:
        bands: one or more broadcastable arrays (reflectance).

    Returns:
        float32 mean, same units as the input.
    """
    if not bands:
        raise ValueError("brightness needs at least one band")
    stacked = np.stack(np.broadcast_arrays(*(np.asarray(b, dtype=np.float64) for b in bands)))
    return stacked.mean(axis=0).astype(np.float32)


def vari(red: ArrayLike, green: ArrayLike, blue: ArrayLike) -> np.ndarray:
    """Visible Atmospherically Resistant Index ``(G − R) / (G + R − B)`` (Gitelson et al., 2002).

    A vegetation index for RGB-only imagery. The denominator can approach 0 for ordinary
    colours, so the result is clipped to [−1, 1] (its meaningful range) and 0 where it is 0.
    Any consistent units (DN 0–255 or reflectance). float32.
    """
    r = np.asarray(red, dtype=np.float64)
    g = np.asarray(green, dtype=np.float64)
    b = np.asarray(blue, dtype=np.float64)
    return safe_ratio(g - r, g + r - b, -1.0, 1.0)


def exg(red: ArrayLike, green: ArrayLike, blue: ArrayLike) -> np.ndarray:
    """Excess Green ``2g − r − b`` on chromatic coordinates (Woebbecke et al., 1995).

    ``r = R / (R + G + B)`` etc., so the index does not depend on illumination intensity.
    In [−1, 2] for non-negative input (clipped to it); 0 where ``R + G + B`` is 0. float32.
    """
    r = np.asarray(red, dtype=np.float64)
    g = np.asarray(green, dtype=np.float64)
    b = np.asarray(blue, dtype=np.float64)
    return safe_ratio(2.0 * g - r - b, r + g + b, -1.0, 2.0)
