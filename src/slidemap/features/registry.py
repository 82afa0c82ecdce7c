"""The feature registry: a name → :class:`Feature` that computes one extra input channel.

Each feature declares the band roles it needs (``requires``), the context it needs around a
tile for exact edges (``halo_px``) and a ``compute`` function from a band stack in stored
units to one ``(H, W) float32`` channel. Stored values are converted to physical units with
``Band.physical_per_unit`` before any arithmetic, since ratios and slopes depend on scale.

Adding a feature is one :func:`register_feature` call; nothing else switches on names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from slidemap.bands import ELEVATION_ROLES, BandSet
from slidemap.errors import BandSetError, ConfigError
from slidemap.features import indices, terrain

#: ``compute(bands (C, H, W) stored units, band_set, pixel_size_m) -> (H, W) float32``.
ComputeFn = Callable[[np.ndarray, BandSet, float], np.ndarray]


@dataclass(frozen=True)
class Feature:
    """One auxiliary input channel.

    Attributes:
        name: registry name (lower case), also the channel name.
        requires: the bands needed, each an inner tuple of alternative roles
            (``(("nir",), ("red",))``; ``(("dem", "dsm"),)`` accepts either).
        halo_px: context pixels around a tile needed for exact values at its edges.
        compute: ``(bands (C, H, W) float32 stored units, band_set, pixel_size_m) ->
            (H, W) float32``, finite for finite input.
        unit: physical unit of the output (for plots and docs).
        description: one line, with the formula.
    """

    name: str
    requires: tuple[tuple[str, ...], ...]
    halo_px: int
    compute: ComputeFn
    unit: str = ""
    description: str = ""

    def supported_by(self, band_set: BandSet) -> bool:
        """Whether ``band_set`` has a band for every requirement."""
        return all(band_set.has(*alternatives) for alternatives in self.requires)

    def check(self, band_set: BandSet) -> None:
        """Raise :class:`BandSetError` naming this feature and the set if a band is missing."""
        missing = [f"a {' or '.join(alt)} band" for alt in self.requires if not band_set.has(*alt)]
        if missing:
            raise BandSetError(
                f"feature {self.name!r} needs {' and '.join(missing)}, which band set "
                f"{band_set.name!r} ({', '.join(band_set.names)}) lacks; remove {self.name!r} "
                f"from the features or use a band set that has it"
            )


def physical_band(bands: np.ndarray, band_set: BandSet, *roles: str, needed_by: str = "") -> np.ndarray:
    """Channel of the first of ``roles`` in ``band_set``, in physical units, ``(H, W) float64``."""
    index = band_set.index(*roles, needed_by=needed_by)
    return bands[index].astype(np.float64) * band_set.bands[index].physical_per_unit


def _spectral(name: str, fn: Callable[..., np.ndarray], *roles: str) -> ComputeFn:
    """A compute function that feeds ``fn`` the physical bands of ``roles``, in order."""

    def compute(bands: np.ndarray, band_set: BandSet, pixel_size_m: float) -> np.ndarray:
        return fn(*(physical_band(bands, band_set, role, needed_by=name) for role in roles))

    return compute


def _terrain(name: str, fn: Callable[[np.ndarray, float], np.ndarray]) -> ComputeFn:
    """A compute function that feeds ``fn`` the elevation (metres) and the pixel size."""

    def compute(bands: np.ndarray, band_set: BandSet, pixel_size_m: float) -> np.ndarray:
        elevation = physical_band(bands, band_set, *ELEVATION_ROLES, needed_by=name)
        return fn(elevation, pixel_size_m)

    return compute


FEATURES: dict[str, Feature] = {}


def register_feature(feature: Feature) -> Feature:
    """Add ``feature`` under its name (replacing one of the same name); returns it."""
    FEATURES[feature.name] = feature
    return feature


def get_feature(name: str) -> Feature:
    """The registered feature ``name`` (case-insensitive); :class:`ConfigError` if unknown."""
    key = str(name).strip().lower()
    if key not in FEATURES:
        raise ConfigError(f"unknown feature {name!r}; known features: {', '.join(list_features())}")
    return FEATURES[key]


def list_features(band_set: BandSet | None = None) -> list[str]:
    """Registered feature names in registration order; only those ``band_set`` supports if given."""
    return [n for n, f in FEATURES.items() if band_set is None or f.supported_by(band_set)]


def _register(
    name: str,
    requires: Sequence[Sequence[str]],
    compute: ComputeFn,
    unit: str,
    description: str,
    halo_px: int = 0,
) -> None:
    register_feature(
        Feature(name, tuple(tuple(r) for r in requires), halo_px, compute, unit, description)
    )


_ELEVATION = (ELEVATION_ROLES,)
_register("ndvi", [["nir"], ["red"]], _spectral("ndvi", indices.ndvi, "nir", "red"), "",
          "(NIR - R) / (NIR + R), Eq. 14")
_register("ndmi", [["nir"], ["swir1"]], _spectral("ndmi", indices.ndmi, "nir", "swir1"), "",
          "(NIR - SWIR1) / (NIR + SWIR1), Eq. 16")
_register("gndvi", [["nir"], ["green"]], _spectral("gndvi", indices.gndvi, "nir", "green"), "",
          "(NIR - G) / (NIR + G), Eq. 17")
_register("bsi", [["swir1"], ["red"], ["nir"], ["blue"]],
          _spectral("bsi", indices.bsi, "swir1", "red", "nir", "blue"), "",
          "((SWIR1 + R) - (NIR + B)) / ((SWIR1 + R) + (NIR + B)), Eq. 18")
_register("brightness", [["blue"], ["green"], ["red"], ["nir"]],
          _spectral("brightness", indices.brightness, "blue", "green", "red", "nir"),
          "reflectance", "(B + G + R + NIR) / 4")
_register("slope", _ELEVATION, _terrain("slope", terrain.slope_deg), "deg",
          "arctan(sqrt((dz/dx)^2 + (dz/dy)^2)) of the DEM, Eq. 15",
          halo_px=terrain.GRADIENT_HALO_PX)
_register("elevation", _ELEVATION,
          _terrain("elevation", lambda z, _px: z.astype(np.float32)), "m",
          "DEM/DSM elevation (relative to the patch median with elevation='relative')")
_register("vari", [["red"], ["green"], ["blue"]],
          _spectral("vari", indices.vari, "red", "green", "blue"), "", "(G - R) / (G + R - B)")
_register("exg", [["red"], ["green"], ["blue"]],
          _spectral("exg", indices.exg, "red", "green", "blue"), "",
          "2g - r - b on chromatic coordinates")
_register("relief", _ELEVATION, _terrain("relief", lambda z, _px: terrain.relief(z)), "m",
          f"elevation minus its {terrain.RELIEF_WINDOW_PX}x{terrain.RELIEF_WINDOW_PX} px mean",
          halo_px=terrain.RELIEF_WINDOW_PX // 2)
_register("hillshade", _ELEVATION, _terrain("hillshade", terrain.hillshade), "",
          "shaded relief, sun at azimuth 315 deg, altitude 45 deg",
          halo_px=terrain.GRADIENT_HALO_PX)
