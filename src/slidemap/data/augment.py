"""Training augmentation: flips and rotations, photometric and elevation jitter, resized crops.

Every function draws from a ``numpy.random.Generator`` it is given, so a patch's
augmentation is a pure function of ``(seed, epoch, index)`` (see
:class:`~slidemap.data.datamodule.PatchDataset`) and a resumed run sees the same batches.

Geometric augmentation: the 8 symmetries of the square (dihedral group D4).

Flips and 90° rotations are the augmentations that keep every pixel value and the pixel
grid, so image and mask stay aligned exactly and no interpolation touches the reflectances.
Satellite imagery has no preferred "up", so all 8 are equally plausible. Note that they
also flip/rotate the *direction* of terrain (a north-facing slope becomes east-facing):
orientation-sensitive channels such as hillshade are transformed as images, not recomputed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from slidemap.bands import ELEVATION_ROLES, OPTICAL_FULL_SCALE, BandSet
from slidemap.errors import ConfigError

#: Number of distinct transforms: 4 rotations × (flipped or not).
N_DIHEDRAL = 8


def apply_dihedral(
    image: np.ndarray, mask: np.ndarray | None, transform: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply dihedral transform ``transform`` (0–7) to an image and its mask alike.

    ``transform = 4·flip + k``: rotate by ``k × 90°`` counter-clockwise, then (if ``flip``)
    mirror left–right. 0 is the identity.

    Args:
        image: ``(C, H, W)`` any dtype. mask: ``(H, W)`` or ``None``.
        transform: integer in ``[0, 8)``.

    Returns:
        C-contiguous ``(image, mask)``; ``H`` and ``W`` swap for odd ``k`` on non-square input.
    """
    if not 0 <= transform < N_DIHEDRAL:
        raise ValueError(f"transform must be in [0, {N_DIHEDRAL}), got {transform}")
    flip, quarter_turns = divmod(int(transform), 4)

    def move(array: np.ndarray) -> np.ndarray:
        out = np.rot90(array, k=quarter_turns, axes=(-2, -1))
        if flip:
            out = np.flip(out, axis=-1)
        return np.ascontiguousarray(out)

    return move(image), None if mask is None else move(mask)


def invert_dihedral(array: np.ndarray, transform: int) -> np.ndarray:
    """Undo :func:`apply_dihedral`'s ``transform`` on ``array`` (last two axes: rows, columns).

    For ``transform = 4·flip + k``: mirror left–right back (if ``flip``), then rotate by
    ``k × 90°`` clockwise. ``invert_dihedral(apply_dihedral(x, None, t)[0], t) == x`` for every
    ``t``; test-time augmentation maps each variant's prediction back with it.

    Returns:
        C-contiguous array; ``H`` and ``W`` swap back for odd ``k``.
    """
    if not 0 <= transform < N_DIHEDRAL:
        raise ValueError(f"transform must be in [0, {N_DIHEDRAL}), got {transform}")
    flip, quarter_turns = divmod(int(transform), 4)
    out = np.flip(array, axis=-1) if flip else array
    return np.ascontiguousarray(np.rot90(out, k=-quarter_turns, axes=(-2, -1)))


def random_dihedral(
    image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply one of the 8 dihedral transforms, drawn uniformly from ``rng``, to both arrays."""
    return apply_dihedral(image, mask, int(rng.integers(N_DIHEDRAL)))


# ---------------------------------------------------------------------------------------------
# Photometric and elevation jitter of the band stack (before the features are computed)

#: RGB -> YIQ (NTSC): Y is the luma, (I, Q) the chroma plane that a hue shift rotates.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
#: luma weights (ITU-R BT.601), the grey a saturation change moves towards or away from
LUMA_WEIGHTS = _RGB_TO_YIQ[0]


def nodata_pixels(bands: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose every band is exactly 0 (outside the footprint)."""
    return ~bands.any(axis=0)


def adjust_gamma(values: np.ndarray, gamma: float, full_scale: float) -> np.ndarray:
    """``full_scale · (max(v, 0) / full_scale) ** gamma``: gamma on values in units of full scale."""
    return full_scale * np.power(np.maximum(values, 0.0) / full_scale, gamma)


def adjust_saturation(rgb: np.ndarray, factor: float) -> np.ndarray:
    """``(3, H, W)`` colours moved from (``factor < 1``) or away from (``> 1``) their grey
    (BT.601 luma); the luma itself is unchanged."""
    grey = np.tensordot(LUMA_WEIGHTS, rgb, axes=1)
    return grey + factor * (rgb - grey)


def rotate_hue(rgb: np.ndarray, turns: float) -> np.ndarray:
    """``(3, H, W)`` colours with their chroma (YIQ's I, Q) rotated by ``turns`` of a full
    circle; luma and chroma magnitude are unchanged."""
    angle = 2.0 * np.pi * turns
    rotation = np.array([[1.0, 0.0, 0.0],
                         [0.0, np.cos(angle), -np.sin(angle)],
                         [0.0, np.sin(angle), np.cos(angle)]])
    matrix = _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ
    return np.tensordot(matrix, rgb, axes=1)


def scale_slope_degrees(slope_deg: np.ndarray, factor: float) -> np.ndarray:
    """Slope of a surface whose relief is scaled by ``factor``: ``atan(factor · tan(slope))``."""
    radians = np.radians(np.clip(slope_deg, 0.0, 89.9))
    return np.degrees(np.arctan(factor * np.tan(radians)))


class BandJitter:
    """Photometric and elevation jitter of one ``(C, H, W)`` band stack in stored units.

    Band-set aware: brightness, contrast, gamma, blur and noise act on the optical bands
    (those with a unit in :data:`~slidemap.bands.OPTICAL_FULL_SCALE`), in units of each
    band's full scale, so the same strengths suit reflectance and 0–255 imagery; saturation
    and hue act on red, green and blue together, when the set has all three; relief and
    offset act on the elevation bands (DEM/DSM), and a precomputed slope band follows the
    relief (:func:`scale_slope_degrees`). Nodata pixels (every band 0) stay exactly 0.

    Args:
        band_set: the bands of the stack.
        photometric, elevation: strengths (:class:`~slidemap.config.PhotometricAugment`,
            :class:`~slidemap.config.ElevationAugment`; anything with those attributes).

    Raises:
        ConfigError: photometric jitter asked of a band set without optical bands, or
            saturation/hue without red, green and blue.
    """

    def __init__(self, band_set: BandSet, photometric: Any, elevation: Any) -> None:
        self.band_set = band_set
        self.photometric = photometric
        self.elevation = elevation
        self.optical = [(i, b.full_scale) for i, b in enumerate(band_set.bands)
                        if b.full_scale is not None]
        self.rgb = list(band_set.rgb_indices()) if band_set.has_rgb() else None
        self.elevation_bands = [i for i, b in enumerate(band_set.bands) if b.role in ELEVATION_ROLES]
        self.slope_bands = [i for i, b in enumerate(band_set.bands) if b.role == "slope"]
        if photometric.probability > 0 and not self.optical:
            raise ConfigError(
                f"photometric augmentation needs optical bands with a unit "
                f"({' or '.join(OPTICAL_FULL_SCALE)}); band set {band_set.name!r} declares none")
        if photometric.probability > 0 and (photometric.saturation or photometric.hue) and self.rgb is None:
            raise ConfigError(
                f"saturation and hue jitter need red, green and blue bands, which band set "
                f"{band_set.name!r} ({', '.join(band_set.names)}) lacks; set them to 0")
        if elevation.probability > 0 and not self.elevation_bands:
            raise ConfigError(
                f"elevation augmentation needs a DEM or DSM band, which band set "
                f"{band_set.name!r} ({', '.join(band_set.names)}) lacks")

    @property
    def active(self) -> bool:
        return self.photometric.probability > 0 or self.elevation.probability > 0

    def __call__(self, bands: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A jittered float32 copy of ``bands`` (``(C, H, W)``, stored units, finite).

        Draws from ``rng`` in a fixed order whatever the outcome (two uniform numbers per
        strength), so one patch's draws never shift another's.
        """
        out = bands.astype(np.float64, copy=True)
        nodata = nodata_pixels(bands)
        self._photometric(out, nodata, rng)
        self._elevation(out, nodata, rng)
        out[:, nodata] = 0.0
        return out.astype(np.float32)

    def _photometric(self, out: np.ndarray, nodata: np.ndarray, rng: np.random.Generator) -> None:
        p = self.photometric
        u = rng.random(9)  # apply?, brightness, contrast, gamma, saturation, hue, blur?, sigma, noise
        if not u[0] < p.probability:
            return
        valid = ~nodata
        indices = [i for i, _ in self.optical]
        scale = np.array([s for _, s in self.optical])[:, None, None]
        optical = out[indices] / scale  # units of full scale
        optical *= 1.0 + p.brightness * (2.0 * u[1] - 1.0)
        if p.contrast:
            means = optical[:, valid].mean(axis=1)[:, None, None] if valid.any() else 0.0
            optical = means + (1.0 + p.contrast * (2.0 * u[2] - 1.0)) * (optical - means)
        if self.rgb is not None and (p.saturation or p.hue):
            where = [indices.index(i) for i in self.rgb]
            colours = optical[where]
            if p.saturation:
                colours = adjust_saturation(colours, 1.0 + p.saturation * (2.0 * u[4] - 1.0))
            if p.hue:
                colours = rotate_hue(colours, p.hue * (2.0 * u[5] - 1.0))
            optical[where] = colours
        if p.gamma:
            optical = adjust_gamma(optical, float(np.exp(np.log1p(p.gamma) * (2.0 * u[3] - 1.0))), 1.0)
        if u[6] < p.blur:
            sigma = 0.3 + (max(p.blur_sigma_px, 0.3) - 0.3) * u[7]
            optical = ndimage.gaussian_filter(optical, sigma=(0.0, sigma, sigma), mode="nearest")
        if p.noise:
            optical = optical + rng.normal(0.0, p.noise * u[8], size=optical.shape)
        saturates = np.array([self.band_set.bands[i].unit == "DN" for i in indices])[:, None, None]
        optical = np.where(saturates, np.clip(optical, 0.0, 1.0), np.maximum(optical, 0.0))
        out[indices] = optical * scale

    def _elevation(self, out: np.ndarray, nodata: np.ndarray, rng: np.random.Generator) -> None:
        e = self.elevation
        u = rng.random(3)  # apply?, relief, offset
        if not u[0] < e.probability:
            return
        valid = ~nodata
        relief = 1.0 + e.relief * (2.0 * u[1] - 1.0)
        offset_m = e.offset_m * (2.0 * u[2] - 1.0)
        for i in self.elevation_bands:
            per_unit = self.band_set.bands[i].physical_per_unit
            level = float(np.median(out[i][valid])) if valid.any() else 0.0
            out[i] = level + relief * (out[i] - level) + offset_m / per_unit
        for i in self.slope_bands:
            per_unit = self.band_set.bands[i].physical_per_unit
            out[i] = scale_slope_degrees(out[i] * per_unit, relief) / per_unit


# ---------------------------------------------------------------------------------------------
# Random resized crops of the model input (after the features)


def _linear_taps(start: int, length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear resampling of ``length`` source pixels from ``start`` to ``size`` pixels, pixel
    centres aligned (``align_corners=False``), clamped at the window's edges: each output
    pixel is ``(1 - frac) · src[low] + frac · src[high]``; returns ``(low, high, frac)``."""
    centres = start + (np.arange(size) + 0.5) * length / size - 0.5
    centres = np.clip(centres, start, start + length - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, start + length - 1)
    return low, high, centres - low


def _nearest_index(start: int, length: int, size: int) -> np.ndarray:
    """Source index of each of ``size`` output pixels, nearest pixel centre."""
    return start + np.minimum(((np.arange(size) + 0.5) * length / size).astype(int), length - 1)


def resized_crop(image: np.ndarray, mask: np.ndarray | None, top: int, left: int, height: int,
                 width: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut ``[top:top+height, left:left+width]`` and resize it back to the input's size.

    Args:
        image: ``(C, H, W)`` float; bilinear. mask: ``(H, W)`` or None; nearest (labels,
            the ignore value 255 included, are never blended).

    Returns:
        ``(C, H, W) float32`` and ``(H, W)`` of the mask's dtype.
    """
    _, rows, cols = image.shape
    low, high, frac = _linear_taps(top, height, rows)
    source = image.astype(np.float64)
    resized = source[:, low] * (1 - frac)[:, None] + source[:, high] * frac[:, None]
    low, high, frac = _linear_taps(left, width, cols)
    resized = resized[:, :, low] * (1 - frac) + resized[:, :, high] * frac
    out_mask = None
    if mask is not None:
        out_mask = np.ascontiguousarray(
            mask[np.ix_(_nearest_index(top, height, rows), _nearest_index(left, width, cols))])
    return resized.astype(np.float32), out_mask


class RandomResizedCrop:
    """Scale augmentation: with chance ``probability`` a random window (side
    ``U(min_scale, 1)`` of the patch, aspect within ``max_aspect``) is resized back to the
    patch size (:func:`resized_crop`).

    Args:
        crop: strengths (:class:`~slidemap.config.CropAugment` or alike).
    """

    def __init__(self, crop: Any) -> None:
        if not 0.0 < crop.min_scale <= 1.0:
            raise ConfigError(f"'data.augmentation.crop.min_scale' must lie in (0, 1], got {crop.min_scale}")
        if crop.max_aspect < 1.0:
            raise ConfigError(f"'data.augmentation.crop.max_aspect' must be >= 1, got {crop.max_aspect}")
        self.crop = crop

    @property
    def active(self) -> bool:
        return self.crop.probability > 0

    def __call__(self, image: np.ndarray, mask: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        u = rng.random(5)  # apply?, side, aspect, top, left
        if not u[0] < self.crop.probability:
            return image, mask
        _, rows, cols = image.shape
        side = self.crop.min_scale + (1.0 - self.crop.min_scale) * u[1]
        aspect = float(np.exp(np.log(self.crop.max_aspect) * (2.0 * u[2] - 1.0)))
        height = int(np.clip(round(rows * side * np.sqrt(aspect)), 1, rows))
        width = int(np.clip(round(cols * side / np.sqrt(aspect)), 1, cols))
        top = int(u[3] * (rows - height + 1))
        left = int(u[4] * (cols - width + 1))
        return resized_crop(image, mask, min(top, rows - height), min(left, cols - width),
                            height, width)
