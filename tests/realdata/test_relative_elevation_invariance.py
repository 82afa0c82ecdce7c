"""Relative elevation: the model input does not depend on the altitude of the ground."""

from __future__ import annotations

import numpy as np
import pytest
from rgbd_fakes import rgbd_patch

from slidemap.features import InputPipeline

FEATURES = ["exg", "vari", "slope", "relief", "hillshade", "elevation"]


def _channels_first(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1))


@pytest.mark.parametrize("offset_m", [-2500.0, 350.25, 4000.0])
@pytest.mark.parametrize("nodata_corner", [False, True])
def test_relative_elevation_input_is_invariant_to_a_constant_added_to_the_dsm(
    offset_m: float, nodata_corner: bool
) -> None:
    pipeline = InputPipeline("rgbd", FEATURES, elevation="relative")
    bands = _channels_first(rgbd_patch(np.random.default_rng(5), 64, nodata_corner)[0])
    raised = bands.copy()
    valid = bands.any(axis=0)  # nodata stays nodata (all bands 0)
    raised[3][valid] += offset_m
    # only the float32 rounding of the raised input differs (0.5 mm at 6,800 m), which the
    # slope (degrees at 1 m pixels) turns into at most thousandths of a degree
    np.testing.assert_allclose(pipeline(raised), pipeline(bands), atol=1e-2)


def test_absolute_elevation_input_does_change_with_the_altitude() -> None:
    pipeline = InputPipeline("rgbd", FEATURES, elevation="absolute")
    bands = _channels_first(rgbd_patch(np.random.default_rng(5), 64)[0])
    raised = bands.copy()
    raised[3] += 500.0
    assert not np.allclose(pipeline(raised), pipeline(bands), atol=1.0)


def test_relative_elevation_puts_nodata_at_the_median_without_an_altitude_cliff() -> None:
    pipeline = InputPipeline("rgbd", ["relief"], elevation="relative")
    bands = _channels_first(rgbd_patch(np.random.default_rng(6), 64, nodata_corner=True)[0])
    out = pipeline(bands)
    nodata = ~bands.any(axis=0)
    assert nodata.any()
    assert np.all(out[3][nodata] == 0.0)
    assert abs(float(np.median(out[3][~nodata]))) < 1e-3
    # the hillside rises ~100 m over 64 px: relief at the footprint's edge stays of that
    # order, instead of the ~2,800 m wall that nodata at 0 m would make
    assert float(np.abs(out[4]).max()) < 100.0
    absolute = InputPipeline("rgbd", ["relief"], elevation="absolute")(bands)
    assert float(np.abs(absolute[4]).max()) > 1000.0
