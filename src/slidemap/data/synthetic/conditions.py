"""Per-patch (or per-scene) conditions: terrain kind, land use, sun and atmosphere.

One :class:`Conditions` is drawn per patch so that the dataset spans the variety of the
Landslide4Sense sites: steep forested mountains (Gorkha, Taiwan), lower hills (Iburi,
Kodagu), valleys with fields and towns, clear and hazy skies, some thin cirrus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Conditions:
    """Everything about a patch that is one number rather than a map.

    Units: metres, degrees, reflectance. ``landslide_fraction`` is the wanted share of
    landslide pixels (the terrain may not allow it: flat ground gets none).
    """

    hash_seed: int
    relief_m: float
    base_m: float
    ridge_weight: float
    floor_quantile: float
    treeline_m: float
    forest_share: float
    floor_slope_deg: float
    farm_share: float
    bare_field_share: float
    crop_share: float
    field_angle_deg: float
    field_size_px: tuple[float, float]
    urban_share: float
    river_half_width: float
    road_half_width_px: float
    contour_road_m: float | None
    landslide_fraction: float
    sun_elevation_deg: float
    sun_azimuth_deg: float
    aerosol: float
    water_vapour_transmittance: float
    cirrus_reflectance: float


def draw_conditions(
    rng: np.random.Generator, *, landslide_fraction: float | None = None
) -> Conditions:
    """Draw one patch's conditions.

    Args:
        landslide_fraction: force the wanted landslide share (the scene uses this);
            by default a quarter of patches get none and the rest a log-normal share.
    """
    valley = rng.random() < 0.5
    relief = rng.uniform(100.0, 420.0) if not valley else rng.uniform(85.0, 320.0)
    base = rng.uniform(20.0, 300.0) if rng.random() < 0.3 else rng.uniform(300.0, 2800.0)
    if landslide_fraction is None:
        landslide_fraction = (
            0.0
            if rng.random() < 0.2
            else float(np.clip(rng.lognormal(np.log(0.045), 0.6), 0.005, 0.15))
        )
    cirrus = float(rng.uniform(0.003, 0.02)) if rng.random() < 0.25 else 0.0
    lo = rng.uniform(8.0, 20.0)
    return Conditions(
        hash_seed=int(rng.integers(0, 2**31)),
        relief_m=relief,
        base_m=base,
        ridge_weight=rng.uniform(0.2, 0.8),
        floor_quantile=rng.uniform(0.35, 0.65) if valley else 0.0,
        treeline_m=rng.uniform(3000.0, 3800.0),
        forest_share=rng.uniform(0.4, 0.85),
        floor_slope_deg=rng.uniform(7.0, 11.0),
        farm_share=rng.uniform(0.3, 0.9),
        bare_field_share=rng.uniform(0.35, 0.7),
        crop_share=rng.uniform(0.15, 0.4),
        field_angle_deg=rng.uniform(0.0, 90.0),
        field_size_px=(lo, lo * rng.uniform(1.0, 2.5)),
        urban_share=rng.uniform(0.0, 0.2) if rng.random() < 0.5 else 0.0,
        river_half_width=rng.uniform(0.1, 0.25),
        road_half_width_px=rng.uniform(0.5, 1.1),
        contour_road_m=float(base + relief * rng.uniform(0.3, 0.7)) if rng.random() < 0.3 else None,
        landslide_fraction=landslide_fraction,
        sun_elevation_deg=rng.uniform(30.0, 65.0),
        sun_azimuth_deg=rng.uniform(120.0, 170.0),
        aerosol=float(rng.lognormal(0.0, 0.15)),
        water_vapour_transmittance=rng.uniform(0.43, 0.62),
        cirrus_reflectance=cirrus,
    )
