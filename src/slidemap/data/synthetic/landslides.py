"""Landslides as geometry: a path traced down the slope and a width profile along it.

A landslide starts at a *crown* on steep ground, follows the steepest descent of the
(smoothed) terrain and stops where the ground flattens or its run-out length is spent. Its
outline is a chain of capsules along that path whose half-width varies from a wide source
scar (top) through a narrower transport track to a runout tongue that fans out (toe), with a
ragged edge. Geometry lives in pixel coordinates of the image grid, so one landslide can
be placed on a coarse DEM (a scene's 30 m grid) and drawn on any block of the 10 m image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Half-width along the normalised path position t (0 = crown, 1 = toe), times the
#: landslide's nominal half-width: a wide scar, a narrower track, a fanning tongue.
_PROFILE_T = np.array([0.0, 0.12, 0.35, 0.7, 0.9, 1.0])
_PROFILE_R = np.array([0.55, 1.0, 0.7, 0.75, 1.0, 0.6])
#: Fraction of the path that is the source scar (fresh rock and soil); below is deposit.
SCAR_FRACTION = 0.35


@dataclass(frozen=True)
class Landslide:
    """One landslide outline in image pixel coordinates.

    Attributes:
        path_rc: (N, 2) float64 (row, col) of the path from crown to toe, N ≥ 2.
        radius_px: (N,) float64 half-width at each path vertex, pixels.
    """

    path_rc: np.ndarray
    radius_px: np.ndarray

    @property
    def area_px(self) -> float:
        """Approximate area in pixels (capsule chain: widths × lengths plus the round ends)."""
        seg = np.linalg.norm(np.diff(self.path_rc, axis=0), axis=1)
        mean_r = 0.5 * (self.radius_px[1:] + self.radius_px[:-1])
        return float(
            np.sum(2.0 * mean_r * seg)
            + np.pi * 0.5 * (self.radius_px[0] ** 2 + self.radius_px[-1] ** 2)
        )

    def bbox(self, pad: float = 2.0) -> tuple[int, int, int, int]:
        """(row0, col0, row1, col1) integer bounds, half-open, enclosing the outline."""
        r = float(self.radius_px.max()) + pad
        lo = np.floor(self.path_rc.min(axis=0) - r).astype(int)
        hi = np.ceil(self.path_rc.max(axis=0) + r).astype(int) + 1
        return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])

    def scaled(self, factor: float) -> Landslide:
        """The same landslide on a grid ``factor`` times finer (pixel centres kept aligned)."""
        return Landslide((self.path_rc + 0.5) * factor - 0.5, self.radius_px * factor)


def trace_downslope(
    dem_m: np.ndarray,
    start_rc: tuple[int, int],
    pixel_size_m: float,
    *,
    max_length_px: float,
    stop_slope_deg: float,
    smoothing_px: float = 2.0,
    direction_grids: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Follow the steepest descent from ``start_rc`` in steps of one pixel.

    The direction has some inertia (debris does not turn on a pixel) and is taken from a
    smoothed DEM, so paths run straight down hollows instead of zig-zagging on noise.
    The path stops at the grid edge, where the local slope falls below ``stop_slope_deg``
    (the runout comes to rest) or after ``max_length_px``.

    Args:
        dem_m: (H, W) elevation, metres.
        direction_grids: precomputed ``(d/drow, d/dcol)`` of the smoothed DEM, metres per
            pixel, to share between landslides on the same grid.

    Returns:
        (N, 2) float64 (row, col) path, N ≥ 1.
    """
    if direction_grids is None:
        direction_grids = downslope_gradients(dem_m, smoothing_px)
    g_row, g_col = direction_grids
    h, w = dem_m.shape
    pos = np.array(start_rc, dtype=np.float64)
    heading = np.zeros(2)
    path = [pos.copy()]
    stop_gradient = np.tan(np.radians(stop_slope_deg)) * pixel_size_m
    length = 0.0
    while length < max_length_px:
        r, c = int(round(pos[0])), int(round(pos[1]))
        if not (0 <= r < h and 0 <= c < w):
            break
        grad = np.array([g_row[r, c], g_col[r, c]])
        norm = float(np.hypot(*grad))
        if norm < stop_gradient and length > 0.25 * max_length_px:
            break
        down = -grad / max(norm, 1e-9)
        heading = 0.6 * heading + 0.4 * down if length > 0 else down
        heading /= max(float(np.hypot(*heading)), 1e-9)
        pos = pos + heading
        length += 1.0
        path.append(pos.copy())
    return np.array(path)


def downslope_gradients(
    dem_m: np.ndarray, smoothing_px: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(dz/drow, dz/dcol)`` of the Gaussian-smoothed DEM, metres per pixel: (H, W) each."""
    smooth = ndimage.gaussian_filter(
        np.asarray(dem_m, dtype=np.float64), smoothing_px, mode="nearest"
    )
    g_row, g_col = np.gradient(smooth)
    return g_row, g_col


def make_landslide(path_rc: np.ndarray, half_width_px: float) -> Landslide | None:
    """A :class:`Landslide` along ``path_rc`` with the standard width profile; None if too short."""
    if len(path_rc) < 3:
        return None
    t = np.linspace(0.0, 1.0, len(path_rc))
    return Landslide(path_rc, half_width_px * np.interp(t, _PROFILE_T, _PROFILE_R))


def place_landslides(
    dem_m: np.ndarray,
    slope_deg: np.ndarray,
    eligible: np.ndarray,
    rng: np.random.Generator,
    *,
    pixel_size_m: float,
    target_area_px: float,
    size_scale: float = 1.0,
    max_count: int = 10_000,
) -> list[Landslide]:
    """Draw landslides until their summed area reaches ``target_area_px``.

    Crowns are drawn among ``eligible`` pixels with a probability that grows steeply with
    slope (``exp((slope - 30°) / 6°)``): landslides concentrate on 30–50° ground. Run-out
    length is 3–8 times the width, as in inventories of shallow landslides.

    Args:
        dem_m, slope_deg, eligible: (H, W) grids (metres, degrees, bool) at ``pixel_size_m``.
        target_area_px: wanted total area in pixels of *this* grid.
        size_scale: pixels of this grid per 10 m (1 for a 10 m grid, 1/3 for 30 m), so
            that landslide sizes stay in metres whatever the grid.

    Returns:
        Landslides in this grid's pixel coordinates.
    """
    candidates = np.flatnonzero(eligible)
    if target_area_px <= 0 or candidates.size == 0:
        return []
    cdf = np.cumsum(np.exp((np.minimum(slope_deg.ravel()[candidates], 60.0) - 30.0) / 6.0))
    grads = downslope_gradients(dem_m, smoothing_px=max(2.0 * size_scale, 1.0))
    slides: list[Landslide] = []
    area = 0.0
    crowns: list[int] = []
    for _ in range(max_count):
        if area >= target_area_px:
            break
        if not crowns:  # draw crowns in batches: one O(N) search per batch, not per landslide
            picks = np.searchsorted(cdf, rng.random(64) * cdf[-1], side="right")
            crowns = candidates[np.minimum(picks, candidates.size - 1)].tolist()[::-1]
        crown = np.unravel_index(crowns.pop(), dem_m.shape)
        half_width = float(np.clip(rng.lognormal(np.log(2.6), 0.4), 1.2, 7.0)) * size_scale
        length = half_width * 2.0 * rng.uniform(3.0, 8.0)
        path = trace_downslope(
            dem_m,
            (int(crown[0]), int(crown[1])),
            pixel_size_m,
            max_length_px=length,
            stop_slope_deg=rng.uniform(8.0, 14.0),
            direction_grids=grads,
        )
        slide = make_landslide(path, half_width)
        if slide is not None:
            slides.append(slide)
            area += slide.area_px
    return slides


def rasterise_landslides(
    slides: list[Landslide],
    origin_rc: tuple[int, int],
    shape: tuple[int, int],
    edge_noise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw landslides on the block of the image grid at ``origin_rc`` with ``shape``.

    Args:
        origin_rc: global (row, col) of the block's first pixel.
        edge_noise: (H, W) offset in pixels added to the outline test (ragged edges).

    Returns:
        ``inside`` (H, W) bool and ``position`` (H, W) float32: normalised path position
        0 (crown) … 1 (toe) inside landslides, NaN elsewhere.
    """
    inside = np.zeros(shape, dtype=bool)
    position = np.full(shape, np.nan, dtype=np.float32)
    for slide in slides:
        r0, c0, r1, c1 = slide.bbox()
        r0, c0 = max(r0 - origin_rc[0], 0), max(c0 - origin_rc[1], 0)
        r1, c1 = min(r1 - origin_rc[0], shape[0]), min(c1 - origin_rc[1], shape[1])
        if r0 >= r1 or c0 >= c1:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        pixels = np.stack([rows + origin_rc[0], cols + origin_rc[1]], axis=-1).reshape(-1, 1, 2)
        a, b = slide.path_rc[:-1][None], slide.path_rc[1:][None]
        ab = b - a
        along = np.clip(
            np.sum((pixels - a) * ab, axis=-1) / np.maximum(np.sum(ab * ab, axis=-1), 1e-12), 0, 1
        )
        dist = np.linalg.norm(pixels - (a + along[..., None] * ab), axis=-1)
        radius = slide.radius_px[:-1][None] + along * np.diff(slide.radius_px)[None]
        excess = dist - radius  # (M, S): < 0 inside that segment's capsule
        best = np.argmin(excess, axis=1)
        margin = excess[np.arange(best.size), best].reshape(rows.shape)
        if edge_noise is not None:
            margin = margin - edge_noise[r0:r1, c0:c1]
        hit = margin < 0
        t = ((best + along[np.arange(best.size), best]) / (len(slide.path_rc) - 1)).reshape(
            rows.shape
        )
        block = position[r0:r1, c0:c1]
        # Where two landslides overlap keep the one nearer its crown (the fresher scar).
        take = hit & ~(block <= t)
        block[take] = t[take]
        inside[r0:r1, c0:c1] |= hit
    return inside, position
