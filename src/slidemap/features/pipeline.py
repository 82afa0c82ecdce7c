"""The input pipeline: band stack → model input (bands, then the chosen features).

One :class:`InputPipeline` is built from a config, stored in every checkpoint
(:meth:`InputPipeline.to_dict`) and rebuilt for evaluation and prediction, so training and
inference compute exactly the same channels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np

from slidemap.bands import ELEVATION_ROLES, BandSet, get_band_set
from slidemap.errors import ConfigError, InputError
from slidemap.features.registry import Feature, get_feature

log = logging.getLogger(__name__)

ElevationMode = Literal["absolute", "relative"]
ELEVATION_MODES: tuple[str, ...] = ("absolute", "relative")


def relative_elevation(bands: np.ndarray, channels: Iterable[int]) -> None:
    """Make elevation channels relative to their median over the valid pixels, in place.

    Args:
        bands: ``(C, H, W)`` float32, stored units, already finite.
        channels: indices of the elevation bands (DEM/DSM).

    Nodata pixels (every band exactly 0: outside a scene's footprint, or non-finite input
    replaced by 0) neither enter the median nor keep their 0: they are set to the median
    (relative elevation 0), so slope, relief and hillshade see no cliff of the valley's
    altitude at the footprint's edge. The median of a window is robust to the few outliers
    of a DSM (trees, buildings, spikes) that would shift a mean. Adding a constant to the
    elevation leaves the result unchanged (up to float32 rounding of the input).
    """
    nodata = ~bands.any(axis=0)
    for i in channels:
        valid = bands[i][~nodata]
        level = np.median(valid.astype(np.float64)) if valid.size else 0.0
        relative = bands[i].astype(np.float64) - level
        relative[nodata] = 0.0
        bands[i] = relative


class InputPipeline:
    """Computes a model's input channels from a band stack.

    Args:
        band_set: the bands of the input files (name, plain-data definition or :class:`BandSet`).
        features: feature names (see :func:`~slidemap.features.registry.list_features`),
            appended after the bands in this order.
        pixel_size_m: pixel spacing in metres for terrain features; ``None`` uses the band
            set's ``pixel_size_m`` (10 m for Landslide4Sense).
        elevation: ``"absolute"`` keeps elevation as it is; ``"relative"`` subtracts the
            median of each elevation band (DEM/DSM) over the array given, so a model cannot
            learn the altitude of one valley. It applies to the elevation band channels and
            hence to the ``elevation`` feature; slope, hillshade and relief do not change,
            except that nodata pixels (all bands 0) take the median instead of a 0 m
            cliff (see :func:`relative_elevation`).
        bands: the names of the bands the model reads (``data.bands``), a subset of
            ``band_set`` (e.g. every ``l4s14`` band but ``B10``, which L2A products lack);
            ``None``: all of them. Features may only need bands of the subset.

    Attributes:
        source_band_set: ``band_set`` as given: the bands of the patch files.
        band_set: the bands the model reads (the subset), in ``source_band_set`` order.

    Raises:
        ConfigError: unknown or repeated feature, bad ``elevation`` or ``pixel_size_m``.
        BandSetError: a feature needs a band the (subset) band set lacks (names both), or
            ``bands`` names a band ``band_set`` does not have.
    """

    def __init__(
        self,
        band_set: str | Mapping[str, Any] | BandSet,
        features: Iterable[str] = (),
        pixel_size_m: float | None = None,
        elevation: ElevationMode = "absolute",
        bands: Iterable[str] | None = None,
    ) -> None:
        self.source_band_set: BandSet = get_band_set(band_set)
        self.band_set: BandSet = (self.source_band_set if bands is None
                                  else self.source_band_set.subset(list(bands)))
        self._selected = [self.source_band_set.names.index(n) for n in self.band_set.names]
        if isinstance(features, str):
            features = (features,)
        self.features: tuple[Feature, ...] = tuple(get_feature(name) for name in features)
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"feature {repeated[0]!r} is listed more than once")
        for feature in self.features:
            feature.check(self.band_set)
        if elevation not in ELEVATION_MODES:
            raise ConfigError(f"elevation must be one of {', '.join(ELEVATION_MODES)}, got {elevation!r}")
        self.elevation: ElevationMode = elevation
        size = self.band_set.pixel_size_m if pixel_size_m is None else pixel_size_m
        try:
            size = float(size)
        except (TypeError, ValueError):
            size = math.nan
        if not math.isfinite(size) or size <= 0:
            raise ConfigError(f"pixel_size_m must be a positive number of metres, got {pixel_size_m!r}")
        self.pixel_size_m: float = size
        self._elevation_channels = [
            i for i, band in enumerate(self.band_set.bands) if band.role in ELEVATION_ROLES
        ]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def channel_names(self) -> list[str]:
        """Output channel names: band names, then feature names.

        A feature named like a band (Landslide4Sense has a ``slope`` band and slidemap a
        ``slope`` feature computed from the DEM) is called ``<name>_feature``, so names are unique.
        """
        bands = {name.lower() for name in self.band_set.names}
        features = [f"{n}_feature" if n in bands else n for n in self.feature_names]
        return [*self.band_set.names, *features]

    @property
    def in_channels(self) -> int:
        """Number of output channels (the model's ``in_channels``)."""
        return len(self.band_set) + len(self.features)

    @property
    def halo_px(self) -> int:
        """Context pixels a tile needs for exact feature values at its edges (0 if none)."""
        return max((f.halo_px for f in self.features), default=0)

    def __call__(self, bands: np.ndarray) -> np.ndarray:
        """Model input for one image (or a batch).

        Args:
            bands: ``(C, H, W)`` (or ``(B, C, H, W)``) in the band set's stored units, with
                ``C = len(band_set)``, or ``C = len(source_band_set)`` (a patch file with
                every band: the subset is taken by name). Non-finite values (nodata) are
                replaced by 0.

        Returns:
            ``(in_channels, H, W)`` (or ``(B, in_channels, H, W)``) float32, all finite.

        Raises:
            InputError: wrong rank or channel count.
        """
        array = np.asarray(bands)
        if array.ndim == 4:
            return np.stack([self(item) for item in array])
        if array.ndim == 3 and array.shape[0] == len(self.source_band_set) != len(self.band_set):
            array = array[self._selected]
        if array.ndim != 3 or array.shape[0] != len(self.band_set):
            raise InputError(
                f"image has shape {array.shape}; band set {self.band_set.name!r} expects "
                f"({len(self.band_set)}, H, W) with bands {', '.join(self.band_set.names)}"
            )
        with np.errstate(over="ignore"):
            clean = np.array(array, dtype=np.float32, copy=True)
        finite = np.isfinite(clean)
        if not finite.all():
            log.debug("replacing %d non-finite input values by 0", int((~finite).sum()))
            clean[~finite] = 0.0
        if self.elevation == "relative":
            relative_elevation(clean, self._elevation_channels)
        out = np.empty((self.in_channels, *clean.shape[1:]), dtype=np.float32)
        out[: len(self.band_set)] = clean
        for offset, feature in enumerate(self.features, start=len(self.band_set)):
            out[offset] = feature.compute(clean, self.band_set, self.pixel_size_m)
        # Features are finite for finite input; this guard keeps that a guarantee.
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, stored in checkpoints (``bands`` only when a subset is read)."""
        data: dict[str, Any] = {
            "band_set": self.source_band_set.to_dict(),
            "features": self.feature_names,
            "pixel_size_m": self.pixel_size_m,
            "elevation": self.elevation,
        }
        if self.band_set is not self.source_band_set:
            data["bands"] = self.band_set.names
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputPipeline:
        """Inverse of :meth:`to_dict`; :class:`ConfigError` on malformed data."""
        if not isinstance(data, Mapping) or "band_set" not in data:
            raise ConfigError(f"malformed input pipeline definition (needs 'band_set'): {data!r}")
        unknown = set(data) - {"band_set", "features", "pixel_size_m", "elevation", "bands"}
        if unknown:
            raise ConfigError(f"input pipeline definition has unknown keys: {', '.join(sorted(unknown))}")
        features = data.get("features") or ()
        if isinstance(features, str) or not isinstance(features, Iterable):
            raise ConfigError(f"pipeline 'features' must be a list of names, got {features!r}")
        return cls(
            data["band_set"],
            features=list(features),
            pixel_size_m=data.get("pixel_size_m"),
            elevation=data.get("elevation", "absolute"),
            bands=data.get("bands"),
        )

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # Pickled by its plain-data form: features hold local functions, and DDP-spawn
        # workers and DataLoader workers receive the pipeline by pickling.
        return (InputPipeline.from_dict, (self.to_dict(),))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InputPipeline) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.band_set.name, tuple(self.feature_names), self.pixel_size_m, self.elevation))

    def __repr__(self) -> str:
        return (
            f"InputPipeline(band_set={self.band_set.name!r}, features={self.feature_names}, "
            f"pixel_size_m={self.pixel_size_m}, elevation={self.elevation!r})"
        )
