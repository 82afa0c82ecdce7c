"""Photometric, elevation and scale augmentation: hand-computed maths, band-set awareness,
nodata kept, mask alignment, and draws that depend on (seed, epoch, index) alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from slidemap.bands import get_band_set
from slidemap.config import CropAugment, ElevationAugment, PhotometricAugment
from slidemap.data.augment import (
    BandJitter,
    RandomResizedCrop,
    adjust_gamma,
    adjust_saturation,
    resized_crop,
    rotate_hue,
    scale_slope_degrees,
)
from slidemap.errors import ConfigError
from slidemap.features.pipeline import InputPipeline

RGBD = get_band_set("rgbd")
L4S = get_band_set("l4s14")
OFF_P, OFF_E = PhotometricAugment(), ElevationAugment()


class FixedDraws:
    """A stand-in generator: ``random(n)`` returns the given uniform numbers (cycled)."""

    def __init__(self, uniforms: list[float], normal_scale: float = 0.0) -> None:
        self.uniforms = uniforms

    def random(self, n: int) -> np.ndarray:
        return np.resize(np.asarray(self.uniforms, dtype=float), n)

    def normal(self, loc: float, scale: float, size: tuple[int, ...]) -> np.ndarray:
        return np.random.default_rng(0).normal(loc, scale, size)


def rgbd_patch(size: int = 16) -> np.ndarray:
    """(4, size, size) float32: mid-range colours and a tilted DSM at ~2,800 m."""
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    rgb = rng.uniform(60, 190, size=(3, size, size)).astype(np.float32)
    dsm = (2800.0 + 0.8 * rows + 0.3 * cols)[None].astype(np.float32)
    return np.concatenate([rgb, dsm])


def test_gamma_on_a_hand_computed_case() -> None:
    values = np.array([0.0, 63.75, 127.5, 255.0])  # 0, 1/4, 1/2, 1 of full scale
    np.testing.assert_allclose(adjust_gamma(values, 2.0, 255.0), [0.0, 15.9375, 63.75, 255.0])
    np.testing.assert_allclose(adjust_gamma(values, 0.5, 255.0), [0.0, 127.5, 255 * np.sqrt(0.5), 255.0])


def test_brightness_gain_is_applied_to_the_colours_only_and_saturates_at_255() -> None:
    bands = rgbd_patch()
    bands[0, 0, 0] = 240.0
    p = replace(OFF_P, probability=1.0, brightness=0.2)
    # u: apply, brightness=1.0 -> gain 1.2, the rest unused
    out = BandJitter(RGBD, p, OFF_E)(bands, FixedDraws([0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5]))
    expected = np.minimum(bands[:3].astype(np.float64) * 1.2, 255.0)
    np.testing.assert_allclose(out[:3], expected, rtol=1e-6)
    assert out[0, 0, 0] == 255.0
    np.testing.assert_array_equal(out[3], bands[3])  # the DSM is not a colour


def test_contrast_scales_the_deviation_from_each_band_mean() -> None:
    bands = rgbd_patch()
    p = replace(OFF_P, probability=1.0, contrast=0.5)
    out = BandJitter(RGBD, p, OFF_E)(bands, FixedDraws([0.0, 0.5, 0.0, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5]))
    mean = bands[:3].reshape(3, -1).mean(axis=1)[:, None, None]
    np.testing.assert_allclose(out[:3], mean + 0.5 * (bands[:3] - mean), rtol=1e-5)


def test_saturation_zero_gives_the_luma_grey_and_keeps_the_luma() -> None:
    rgb = rgbd_patch()[:3].astype(np.float64)
    grey = adjust_saturation(rgb, 0.0)
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    for channel in grey:
        np.testing.assert_allclose(channel, luma)
    np.testing.assert_allclose(adjust_saturation(rgb, 1.0), rgb)


def test_hue_rotation_keeps_luma_and_greys_and_a_full_turn_is_the_identity() -> None:
    rgb = rgbd_patch()[:3].astype(np.float64)
    luma = np.tensordot([0.299, 0.587, 0.114], rgb, axes=1)
    turned = rotate_hue(rgb, 0.15)
    np.testing.assert_allclose(np.tensordot([0.299, 0.587, 0.114], turned, axes=1), luma, atol=1e-9)
    assert np.abs(turned - rgb).max() > 5  # colours did move
    np.testing.assert_allclose(rotate_hue(rgb, 1.0), rgb, atol=1e-9)
    grey = np.full((3, 2, 2), 100.0)
    np.testing.assert_allclose(rotate_hue(grey, 0.3), grey, atol=1e-9)


def test_noise_is_scaled_to_each_band_full_scale() -> None:
    """Reflectance bands (l4s14: stored units of 1/physical_per_unit) and 0-255 bands get
    the same noise relative to full scale."""
    p = replace(OFF_P, probability=1.0, noise=0.02)
    draws = [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 0.5, 1.0]  # noise std = 0.02 of full scale
    l4s = np.full((14, 64, 64), 5.0, dtype=np.float32)  # reflectance 0.22-0.97: no clipping
    out = BandJitter(L4S, p, OFF_E)(l4s, FixedDraws(draws))
    red = L4S.index("red")
    expected_std = 0.02 / L4S.bands[red].physical_per_unit
    assert abs((out[red] - l4s[red]).std() / expected_std - 1) < 0.05
    np.testing.assert_array_equal(out[L4S.index("dem")], l4s[L4S.index("dem")])
    rgb = rgbd_patch(64)
    out = BandJitter(RGBD, p, OFF_E)(rgb, FixedDraws(draws))
    assert abs((out[0] - rgb[0]).std() / (0.02 * 255) - 1) < 0.05


def test_nodata_pixels_stay_exactly_zero_under_every_jitter() -> None:
    bands = rgbd_patch()
    bands[:, :4, :5] = 0.0
    p = PhotometricAugment(probability=1, brightness=0.3, contrast=0.3, gamma=0.3, saturation=0.3,
                           hue=0.1, blur=1.0, blur_sigma_px=2.0, noise=0.05)
    e = ElevationAugment(probability=1, relief=0.5, offset_m=50)
    out = BandJitter(RGBD, p, e)(bands, np.random.default_rng(1))
    assert np.all(out[:, :4, :5] == 0.0)
    assert np.all(out[:, 4:].any(axis=0))  # valid pixels did not become nodata


def test_elevation_offset_leaves_slope_unchanged_and_relief_scales_tan_slope() -> None:
    pipeline = InputPipeline("rgbd", ["slope", "relief"], elevation="absolute")
    bands = rgbd_patch(32)
    base = pipeline(bands)
    offset = BandJitter(RGBD, OFF_P, ElevationAugment(probability=1, offset_m=40))
    moved = offset(bands, FixedDraws([0.0, 0.5, 1.0]))  # offset +40 m, relief 1
    np.testing.assert_allclose(moved[3], bands[3] + 40.0, atol=1e-3)
    # slope and relief, up to float32 rounding of a DSM at ~2,800 m (2.4e-4 m steps)
    np.testing.assert_allclose(pipeline(moved)[4:], base[4:], atol=1e-2)
    steeper = BandJitter(RGBD, OFF_P, ElevationAugment(probability=1, relief=0.5))
    scaled = pipeline(steeper(bands, FixedDraws([0.0, 1.0, 0.5])))  # relief x1.5
    inner = (slice(2, -2), slice(2, -2))  # the tilted plane's slope, away from the edges
    expected = np.degrees(np.arctan(1.5 * np.tan(np.radians(base[4][inner]))))
    np.testing.assert_allclose(scaled[4][inner], expected, atol=1e-2)


def test_a_slope_band_follows_the_relief_factor() -> None:
    np.testing.assert_allclose(scale_slope_degrees(np.array([0.0, 45.0]), 2.0),
                               [0.0, np.degrees(np.arctan(2.0))])
    bands = np.ones((14, 8, 8), dtype=np.float32)
    slope = L4S.index("slope")
    per_unit = L4S.bands[slope].physical_per_unit
    bands[slope] = 30.0 / per_unit
    out = BandJitter(L4S, OFF_P, ElevationAugment(probability=1, relief=0.5))(
        bands, FixedDraws([0.0, 0.0, 0.5]))  # relief x0.5
    np.testing.assert_allclose(out[slope] * per_unit,
                               np.degrees(np.arctan(0.5 * np.tan(np.radians(30.0)))), rtol=1e-5)


def test_colour_jitter_is_refused_for_a_band_set_without_rgb_or_optical_bands() -> None:
    no_blue = get_band_set({"name": "rg", "bands": [
        {"name": "R", "role": "red", "unit": "DN"}, {"name": "G", "role": "green", "unit": "DN"}]})
    with pytest.raises(ConfigError, match="red, green and blue"):
        BandJitter(no_blue, replace(OFF_P, probability=1, hue=0.1), OFF_E)
    BandJitter(no_blue, replace(OFF_P, probability=1, brightness=0.1), OFF_E)  # fine
    unitless = get_band_set({"name": "x", "bands": [{"name": "R", "role": "red"}]})
    with pytest.raises(ConfigError, match="optical bands"):
        BandJitter(unitless, replace(OFF_P, probability=1, brightness=0.1), OFF_E)
    with pytest.raises(ConfigError, match="DEM or DSM"):
        BandJitter(unitless, OFF_P, replace(OFF_E, probability=1, relief=0.2))


def coordinates(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:size, 0:size]
    return np.stack([rows, cols]).astype(np.float32), (rows * size + cols).astype(np.int64)


@pytest.mark.parametrize(("top", "left", "height", "width"), [(0, 0, 16, 16), (3, 5, 9, 7), (8, 1, 6, 12)])
def test_resized_crop_keeps_the_mask_aligned_with_the_image(top: int, left: int, height: int,
                                                            width: int) -> None:
    image, mask = coordinates()
    out_image, out_mask = resized_crop(image, mask, top, left, height, width)
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
    source_rows, source_cols = np.divmod(out_mask, 16)
    # every mask label comes from within half a source pixel of where the image was sampled
    assert np.abs(out_image[0] - source_rows).max() <= 0.5 + 1e-6
    assert np.abs(out_image[1] - source_cols).max() <= 0.5 + 1e-6
    assert source_rows.min() >= top and source_rows.max() < top + height
    assert source_cols.min() >= left and source_cols.max() < left + width
    if height == width == 16:
        np.testing.assert_array_equal(out_image, image)
        np.testing.assert_array_equal(out_mask, mask)


def test_random_resized_crop_zooms_in_and_keeps_label_values() -> None:
    crop = RandomResizedCrop(CropAugment(probability=1.0, min_scale=0.5, max_aspect=1.25))
    image, _ = coordinates(32)
    mask = np.where(image[0] < 16, 255, 1).astype(np.uint8)
    zoomed, zoomed_mask = crop(image, mask, np.random.default_rng(3))
    assert set(np.unique(zoomed_mask)) <= {1, 255}  # nearest: no blended labels
    span = zoomed[0].max() - zoomed[0].min()
    assert span < 31  # the window is smaller than the patch
    unchanged = RandomResizedCrop(CropAugment(probability=0.0))(image, mask, np.random.default_rng(3))
    assert unchanged[0] is image and unchanged[1] is mask
