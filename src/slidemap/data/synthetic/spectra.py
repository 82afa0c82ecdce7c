"""Sentinel-2 spectra: surface reflectance per land cover, atmosphere, sensor.

Reflectances are for the 12 Landslide4Sense bands B1–B12 (no B8A), 0–1. Endmembers are
typical library values: green vegetation is dark in the red (B4) and bright in the NIR
(B8) with a red edge in B5–B7; soil and rock rise steadily into the SWIR (B11, B12); water
is dark everywhere beyond green. The key design choice: landslides and their look-alikes
(bare fields, riverbeds, roads) are drawn from the *same* soil mixture (dark moist soil to
bright dry rock, with some residual vegetation), so spectra alone cannot separate them.

The top-of-atmosphere model is ``path + T · illumination · surface + cirrus``: a path
radiance that grows towards the blue (haze), a transmittance, terrain shading from the sun
angle, and thin cirrus that lifts every band and dominates the cirrus band B10. Finally
the sensor adds noise, the 20 m and 60 m bands are block-resampled to 10 m as in the
Landslide4Sense files, and values are quantised to digital numbers (reflectance × 10 000).
"""

from __future__ import annotations

import numpy as np

N_BANDS = 12
#: Band order of Landslide4Sense (and of every array here).
BAND_NAMES: tuple[str, ...] = (
    "B1",
    "B2",
    "B3",
    "B4",
    "B5",
    "B6",
    "B7",
    "B8",
    "B9",
    "B10",
    "B11",
    "B12",
)
CIRRUS = BAND_NAMES.index("B10")
WATER_VAPOUR = BAND_NAMES.index("B9")
#: Native resolution of each band relative to 10 m (B1, B9, B10 at 60 m; B5–B7, B11, B12 at 20 m).
NATIVE_FACTOR: tuple[int, ...] = (6, 1, 1, 1, 2, 2, 2, 1, 6, 6, 2, 2)

#: Surface reflectance endmembers, bands B1..B12 (B10 sees no surface: set by the atmosphere).
ENDMEMBERS: dict[str, np.ndarray] = {
    name: np.array(values)
    for name, values in {
        "forest": (0.022, 0.028, 0.050, 0.028, 0.080, 0.210, 0.260, 0.280, 0.280, 0, 0.140, 0.062),
        "shrub": (0.032, 0.042, 0.070, 0.058, 0.108, 0.205, 0.240, 0.258, 0.262, 0, 0.215, 0.115),
        "crop": (0.028, 0.038, 0.078, 0.042, 0.108, 0.290, 0.360, 0.380, 0.380, 0, 0.200, 0.095),
        "soil_dark": (
            0.048,
            0.058,
            0.082,
            0.105,
            0.125,
            0.145,
            0.160,
            0.175,
            0.185,
            0,
            0.245,
            0.195,
        ),
        "soil_bright": (
            0.095,
            0.125,
            0.175,
            0.225,
            0.255,
            0.275,
            0.295,
            0.315,
            0.325,
            0,
            0.400,
            0.340,
        ),
        "water": (0.060, 0.068, 0.078, 0.058, 0.048, 0.030, 0.025, 0.020, 0.018, 0, 0.010, 0.008),
        "urban": (0.085, 0.105, 0.125, 0.135, 0.155, 0.175, 0.185, 0.195, 0.200, 0, 0.235, 0.205),
    }.items()
}
#: Additive path radiance (aerosol + Rayleigh) at aerosol = 1, as reflectance.
PATH_REFLECTANCE = np.array(
    [0.078, 0.052, 0.028, 0.017, 0.013, 0.009, 0.007, 0.006, 0.004, 0.0, 0.002, 0.001]
)
#: Two-way transmittance of the surface signal.
TRANSMITTANCE = np.array([0.74, 0.78, 0.78, 0.79, 0.80, 0.81, 0.82, 0.82, 0.82, 0.0, 0.84, 0.84])
#: Sensor noise, reflectance (1 sigma).
NOISE_SIGMA = np.array(
    [0.0015, 0.0020, 0.0020, 0.0020, 0.0020, 0.0020, 0.0020, 0.0025, 0.0020, 0.0002, 0.0020, 0.0020]
)
#: Fraction of a thin cirrus layer's B10 reflectance that it adds to the other bands.
CIRRUS_SPILL = 0.8
#: B10 reflectance of a clear sky (water vapour absorbs nearly all surface signal).
CLEAR_SKY_B10 = 0.0009
#: Light that reaches shaded slopes by skylight, as a fraction of flat-ground illumination.
DIFFUSE_FRACTION = 0.25


def soil_reflectance(brightness: np.ndarray, vegetation_fraction: np.ndarray) -> np.ndarray:
    """Bare ground: dark-moist to bright-dry soil/rock, mixed with some green vegetation.

    Args:
        brightness: (...) 0 = dark moist soil, 1 = bright dry soil or fresh rock.
        vegetation_fraction: (...) 0–1 share of green cover within the pixel.

    Returns:
        (12, ...) float64 surface reflectance.
    """
    b = np.clip(brightness, 0.0, 1.2)[None]
    fv = np.clip(vegetation_fraction, 0.0, 1.0)[None]
    shape = (N_BANDS,) + (1,) * (b.ndim - 1)
    soil = (1.0 - b) * ENDMEMBERS["soil_dark"].reshape(shape) + b * ENDMEMBERS[
        "soil_bright"
    ].reshape(shape)
    return (1.0 - fv) * soil + fv * ENDMEMBERS["shrub"].reshape(shape)


def top_of_atmosphere(
    surface: np.ndarray,
    illumination: np.ndarray,
    haze: np.ndarray,
    cirrus: np.ndarray,
    dem_m: np.ndarray,
    aerosol: float,
    water_vapour_transmittance: float,
) -> np.ndarray:
    """TOA reflectance from surface reflectance.

    Args:
        surface: (12, H, W) surface reflectance.
        illumination: (H, W) direct ``cos(i)/cos(z)`` (see ``terrain.illumination``).
        haze: (H, W) multiplicative variation of the aerosol path radiance (≈ 1).
        cirrus: (H, W) ≥ 0 thin-cirrus reflectance in B10.
        dem_m: (H, W) metres; high ground sees through more of the water vapour in B10.

    Returns:
        (12, H, W) float64 TOA reflectance.
    """
    light = DIFFUSE_FRACTION + (1.0 - DIFFUSE_FRACTION) * illumination
    toa = (
        PATH_REFLECTANCE[:, None, None] * aerosol * haze
        + TRANSMITTANCE[:, None, None] * light * surface
    )
    toa[WATER_VAPOUR] *= water_vapour_transmittance
    toa += CIRRUS_SPILL * cirrus
    above_vapour = np.clip(dem_m / 4000.0, 0.0, 1.0) ** 2
    toa[CIRRUS] = CLEAR_SKY_B10 + 0.01 * above_vapour * surface[WATER_VAPOUR] + cirrus
    return toa


def block_resample(band: np.ndarray, factor: int, offset_rc: tuple[int, int]) -> np.ndarray:
    """Average over ``factor``×``factor`` blocks and repeat: a coarse band brought to 10 m.

    Blocks are aligned to the global grid through ``offset_rc`` (the tile's origin), so
    blocks of a scene line up across tiles.

    Args:
        band: (H, W).
    """
    if factor == 1:
        return band
    h, w = band.shape
    pad_top, pad_left = offset_rc[0] % factor, offset_rc[1] % factor
    pad_bottom = (-(h + pad_top)) % factor
    pad_right = (-(w + pad_left)) % factor
    padded = np.pad(band, ((pad_top, pad_bottom), (pad_left, pad_right)), mode="edge")
    ph, pw = padded.shape
    coarse = padded.reshape(ph // factor, factor, pw // factor, factor).mean(axis=(1, 3))
    fine = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    return fine[pad_top : pad_top + h, pad_left : pad_left + w]


def sensor(toa: np.ndarray, rng: np.random.Generator, offset_rc: tuple[int, int]) -> np.ndarray:
    """Noise, native resolution and quantisation: TOA reflectance → digital numbers.

    Args:
        toa: (12, H, W) reflectance.
        offset_rc: global (row, col) of the tile, for block alignment.

    Returns:
        (12, H, W) uint16 reflectance × 10 000, ≥ 1 (0 is kept for nodata).
    """
    noisy = toa + NOISE_SIGMA[:, None, None] * rng.standard_normal(toa.shape, dtype=np.float32)
    for band, factor in enumerate(NATIVE_FACTOR):
        noisy[band] = block_resample(noisy[band], factor, offset_rc)
    return np.clip(np.rint(noisy * 10_000.0), 1, 65_535).astype(np.uint16)
