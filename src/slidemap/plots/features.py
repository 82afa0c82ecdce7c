"""The paper's Fig. 2: a patch in true colour and its seven auxiliary feature maps (§2.4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from slidemap.bands import BandSet, get_band_set
from slidemap.config import PAPER_FEATURES
from slidemap.errors import InputError
from slidemap.features import get_feature

#: Percentiles of the contrast stretch (true colour and colour-bar limits).
STRETCH_PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class _Panel:
    title: str
    cmap: str


_PANELS: dict[str, _Panel] = {
    "ndvi": _Panel("NDVI", "RdYlGn"),
    "slope": _Panel("Slope (°)", "magma"),
    "elevation": _Panel("Elevation (m)", "terrain"),
    "ndmi": _Panel("NDMI", "BrBG"),
    "gndvi": _Panel("GNDVI", "YlGn"),
    "brightness": _Panel("Brightness (reflectance)", "gray"),
    "bsi": _Panel("BSI", "YlOrBr"),
}


def _limits(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, STRETCH_PERCENTILES)
    if hi <= lo:  # flat map: show it mid-range rather than failing
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


def true_colour(bands: np.ndarray, band_set: BandSet) -> np.ndarray:
    """``(H, W, 3) float32`` RGB in [0, 1], each channel stretched between its 2nd and 98th
    percentile. ``bands`` is ``(C, H, W)`` in stored units.

    Raises:
        BandSetError: the band set has no red, green or blue band.
    """
    channels = list(band_set.rgb_indices(needed_by="the true-colour panel"))
    rgb = np.moveaxis(bands[channels], 0, -1).astype(np.float64)
    lo, hi = np.percentile(rgb, STRETCH_PERCENTILES, axis=(0, 1))
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((rgb - lo) / span, 0.0, 1.0).astype(np.float32)


def _draw_map(fig: Figure, ax: Axes, values: np.ndarray, panel: _Panel) -> None:
    lo, hi = _limits(values)
    image = ax.imshow(values, cmap=panel.cmap, vmin=lo, vmax=hi, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def _draw_missing(ax: Axes, reason: str) -> None:
    ax.text(
        0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes
    )
    ax.set_facecolor("0.92")


def plot_feature_maps(
    bands: np.ndarray,
    band_set: str | Mapping[str, Any] | BandSet,
    pixel_size_m: float | None = None,
    title: str | None = None,
) -> Figure:
    """True colour and the paper's seven feature maps of one patch (Fig. 2), 2 × 4 panels.

    Args:
        bands: ``(C, H, W)`` band stack in the band set's stored units (as read by
            :func:`~slidemap.data.l4s.read_image`).
        band_set: the bands of ``bands``.
        pixel_size_m: pixel spacing for the slope, metres; ``None`` uses the band set's.
        title: figure title (e.g. the file name).

    Returns:
        A matplotlib :class:`~matplotlib.figure.Figure` (not attached to pyplot). Each map
        has a title, a colour bar and a 2–98 % stretch; a feature the band set cannot provide
        is shown as an empty panel that says which band is missing.

    Raises:
        InputError: ``bands`` is not ``(len(band_set), H, W)``.
    """
    band_set = get_band_set(band_set)
    bands = np.asarray(bands)
    if bands.ndim != 3 or bands.shape[0] != len(band_set):
        raise InputError(
            f"image has shape {bands.shape}; band set {band_set.name!r} expects ({len(band_set)}, H, W)"
        )
    clean = np.nan_to_num(bands.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    pixel_size = band_set.pixel_size_m if pixel_size_m is None else float(pixel_size_m)
    fig = Figure(figsize=(16, 8), layout="constrained")
    axes = fig.subplots(2, 4)
    rgb_ax = axes[0, 0]
    if band_set.has_rgb():
        rgb_ax.imshow(true_colour(clean, band_set), interpolation="nearest")
    else:
        _draw_missing(rgb_ax, f"band set {band_set.name!r} has no red, green and blue bands")
    rgb_ax.set_title("True colour (RGB)")
    for ax, name in zip(axes.flat[1:], PAPER_FEATURES, strict=True):
        feature, panel = get_feature(name), _PANELS[name]
        if feature.supported_by(band_set):
            _draw_map(fig, ax, feature.compute(clean, band_set, pixel_size), panel)
        else:
            needs = ", ".join(
                " or ".join(alt) for alt in feature.requires if not band_set.has(*alt)
            )
            _draw_missing(ax, f"needs {needs}; not in band set {band_set.name!r}")
        ax.set_title(panel.title)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
