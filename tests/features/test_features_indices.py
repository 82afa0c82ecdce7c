"""Spectral indices: hand-computed values, safe division, and finiteness for any finite input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from slidemap.bands import get_band_set
from slidemap.features import indices
from slidemap.features.registry import get_feature


def test_normalized_difference_indices_match_hand_computed_values() -> None:
    nir, red, green, swir1, blue = 0.5, 0.1, 0.2, 0.3, 0.05
    assert indices.ndvi(nir, red) == pytest.approx(0.4 / 0.6)  # Eq. 14
    assert indices.ndmi(nir, swir1) == pytest.approx(0.2 / 0.8)  # Eq. 16
    assert indices.gndvi(nir, green) == pytest.approx(0.3 / 0.7)  # Eq. 17
    # Eq. 18: ((0.3 + 0.1) - (0.5 + 0.05)) / ((0.3 + 0.1) + (0.5 + 0.05)) = -0.15 / 0.95
    assert indices.bsi(swir1, red, nir, blue) == pytest.approx(-0.15 / 0.95)
    assert indices.brightness(0.1, 0.2, 0.3, 0.4) == pytest.approx(0.25)


def test_rgb_indices_match_hand_computed_values() -> None:
    r, g, b = 100.0, 150.0, 50.0
    assert indices.vari(r, g, b) == pytest.approx(50.0 / 200.0)
    # chromatic coordinates r=1/3, g=1/2, b=1/6 -> 2g - r - b = 1 - 1/2 = 0.5
    assert indices.exg(r, g, b) == pytest.approx(0.5)
    assert indices.exg(2 * r, 2 * g, 2 * b) == pytest.approx(0.5)  # illumination-invariant


def test_zero_denominator_gives_zero_not_nan() -> None:
    zeros = np.zeros((3, 3), np.float32)
    for value in (
        indices.ndvi(zeros, zeros),
        indices.bsi(zeros, zeros, zeros, zeros),
        indices.vari(zeros, zeros, zeros),
        indices.exg(zeros, zeros, zeros),
        indices.ndvi(np.float32(0.3), np.float32(-0.3)),
    ):
        assert np.all(value == 0.0)
        assert value.dtype == np.float32


def test_indices_are_clipped_to_their_range_for_negative_reflectance() -> None:
    # NIR + R = 1e-3: the raw ratio would be ~2000.
    assert indices.ndvi(1.0, -0.999) == pytest.approx(1.0)
    assert indices.ndvi(-0.999, 1.0) == pytest.approx(-1.0)
    assert indices.exg(-1.0, 5.0, -3.999) == pytest.approx(2.0)


def test_indices_keep_shape_and_return_float32() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, (2, 5, 7))
    assert indices.ndvi(a, b).shape == (5, 7) and indices.ndvi(a, b).dtype == np.float32
    np.testing.assert_allclose(indices.ndvi(a, b), (a - b) / (a + b), rtol=1e-6)


def test_registry_features_convert_stored_values_to_physical_units() -> None:
    band_set = get_band_set("l4s14")
    rng = np.random.default_rng(1)
    physical = rng.uniform(0.01, 0.6, (14, 4, 4))
    stored = physical / np.array([b.physical_per_unit for b in band_set.bands])[:, None, None]
    nir, red, swir1, blue = (physical[band_set.index(r)] for r in ("nir", "red", "swir1", "blue"))
    bands32 = stored.astype(np.float32)
    np.testing.assert_allclose(get_feature("ndvi").compute(bands32, band_set, 10.0), indices.ndvi(nir, red), atol=1e-6)
    np.testing.assert_allclose(get_feature("bsi").compute(bands32, band_set, 10.0), indices.bsi(swir1, red, nir, blue), atol=1e-6)
    # the stored-unit ratio differs: scale factors are not equal
    assert not np.allclose(indices.ndvi(stored[band_set.index("nir")], stored[band_set.index("red")]), indices.ndvi(nir, red))


finite_float32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
special = st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1e-7, -1e-7, 3e38, -3e38, 1.0, -1.0])
band = arrays(np.float32, (3, 4), elements=st.one_of(finite_float32, special))

FLOAT32_MAX = float(np.finfo(np.float32).max)
INDEX_CALLS = {
    "ndvi": (lambda a, b, c, d: indices.ndvi(a, b), (-1, 1)),
    "ndmi": (lambda a, b, c, d: indices.ndmi(a, b), (-1, 1)),
    "gndvi": (lambda a, b, c, d: indices.gndvi(a, b), (-1, 1)),
    "bsi": (lambda a, b, c, d: indices.bsi(a, b, c, d), (-1, 1)),
    "brightness": (lambda a, b, c, d: indices.brightness(a, b, c, d), (-FLOAT32_MAX, FLOAT32_MAX)),
    "vari": (lambda a, b, c, d: indices.vari(a, b, c), (-1, 1)),
    "exg": (lambda a, b, c, d: indices.exg(a, b, c), (-1, 2)),
}


@pytest.mark.parametrize("name", list(INDEX_CALLS))
@settings(max_examples=60, deadline=None)
@given(a=band, b=band, c=band, d=band)
def test_no_index_returns_nan_or_inf_for_finite_input(name: str, a, b, c, d) -> None:
    fn, (lo, hi) = INDEX_CALLS[name]
    out = fn(a, b, c, d)
    assert out.dtype == np.float32 and out.shape == (3, 4)
    assert np.isfinite(out).all()
    assert (out >= lo).all() and (out <= hi).all()
