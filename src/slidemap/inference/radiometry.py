"""The radiometry check: does a scene hold the values the model was trained on?

Before a scene is mapped, a sample of it (:data:`SAMPLE_WINDOWS` small windows spread over
the scene, read exactly as mapping reads them, assessable pixels only) is compared, band by
band, with the checkpoint's normalisation statistics (the mean and standard deviation of
every training pixel). The test statistics are robust (median and percentiles of the
sample, not its mean) and the margins wide, because legitimate scenes differ a lot from a
training set: snow is ten times brighter than the training mean in the visible bands, water
ten times darker in the infrared. What the check looks for are the faults that move values
by orders of magnitude or shift all of them, which no landscape does:

=================  ============================================================================
unit               a band is implausible when
=================  ============================================================================
``reflectance``    its median is ≤ 0, or more than :data:`MAX_RATIO` times above or below the
                   training mean (digital numbers read as reflectance: ×10 000; a scale
                   applied twice: ÷10 000); or 5 % of its pixels are below
                   :data:`NEGATIVE_REFLECTANCE` (an offset applied that the data does not have)
``m`` (elevation)  its 1st or 99th percentile lies outside [:data:`ELEVATION_RANGE_M`]
``deg``            its values leave [0, 90]
other (e.g. DN)    its median is more than :data:`MAX_RATIO` times off the training mean, or its
                   99th percentile is more than :data:`MAX_SIGMAS` standard deviations above it
=================  ============================================================================

and the scene is implausible when the darkest 1 % of *every* reflectance band is at or above
:data:`OFFSET_FLOOR`: what a Sentinel-2 product of processing baseline 04.00 or later looks
like when read without its ``+1000 DN`` offset (every reflectance 0.1 too high), while any
real scene has dark pixels in some band (vegetation in the red, water and shadow in the
infrared). The margins were checked on the synthetic scenes, on the 14 real
Landslide4Sense patches (their darkest band's 1st percentile is 0.0007) and on the injected
faults (``tests/inference/test_radiometry_check.py``).

An implausible scene is refused with one line naming the band, what was expected, what was
found and how to override (``--accept-radiometry``); the comparison is recorded in
``summary.json`` either way. A scene whose processing level (L1C top-of-atmosphere or L2A
surface reflectance) differs from the one the model's band set declares is mapped with a
warning: values alone cannot tell the two apart reliably.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from rasterio.windows import Window

from slidemap.bands import Band
from slidemap.data.normalization import ChannelStats
from slidemap.errors import InputError
from slidemap.inference.scene import (
    FLAG_NO_ELEVATION,
    STATUS_ASSESSABLE,
    STATUS_OUTSIDE,
    SceneReader,
)

log = logging.getLogger(__name__)

#: Windows per side of the sample grid, and their size (px): at most 8 × 8 × 64² = 262,144
#: pixels are read, wherever the scene is.
SAMPLE_WINDOWS = 8
SAMPLE_WINDOW_PX = 64
#: Largest factor between a band's sample median and its training mean.
MAX_RATIO = 100.0
#: A reflectance band whose 5th percentile is below this has been shifted down.
NEGATIVE_REFLECTANCE = -0.05
#: Every reflectance band's 1st percentile at or above this: an undeclared offset.
OFFSET_FLOOR = 0.09
#: Plausible elevations, metres (the Dead Sea shore to above Everest).
ELEVATION_RANGE_M = (-500.0, 9000.0)
#: Upper tail of bands in other units, in training standard deviations above the mean.
MAX_SIGMAS = 20.0
#: Percentiles reported for every band.
PERCENTILES = {"p1": 1, "p5": 5, "median": 50, "p99": 99}

ACCEPT_HINT = "override with --accept-radiometry if the values are right"


def sample_windows(height: int, width: int, per_side: int = SAMPLE_WINDOWS,
                   size: int = SAMPLE_WINDOW_PX) -> list[Window]:
    """Up to ``per_side²`` windows of ``size`` px spread evenly over a ``height × width`` scene."""
    def starts(length: int) -> list[int]:
        side = min(size, length)
        count = min(per_side, max(1, length // side))
        return sorted({round(i * (length - side) / max(count - 1, 1)) for i in range(count)})

    side_h, side_w = min(size, height), min(size, width)
    return [Window(col, row, side_w, side_h) for row in starts(height) for col in starts(width)]


def _ratio_problem(median: float, mean: float, what: str) -> str | None:
    if not median > 0 or not mean > 0:
        return None
    ratio = median / mean
    if 1 / MAX_RATIO <= ratio <= MAX_RATIO:
        return None
    hint = ("digital numbers read as reflectance (a missing scale)?" if ratio > MAX_RATIO
            else "a scale applied to values already in these units?")
    factor = ratio if ratio > 1 else 1 / ratio
    return (f"median {what} {median:.4g}, expected about {mean:.3g} (the training mean): "
            f"{factor:,.0f}× too {'high' if ratio > 1 else 'low'}; {hint}")


def _reflectance(band: Band, found: dict[str, float], mean: float, std: float) -> str | None:
    if found["median"] <= 0:
        return (f"median reflectance {found['median']:.3g} ≤ 0, expected about {mean:.3g} (the training "
                "mean): an offset applied that the data does not have?")
    problem = _ratio_problem(found["median"], mean, "reflectance")
    if problem is None and found["p5"] < NEGATIVE_REFLECTANCE:
        problem = (f"5 % of its pixels are below {found['p5']:.3f} reflectance (expected ≥ 0; training "
                   f"mean {mean:.3g}): an offset applied twice, or to data without one?")
    return problem


def _elevation(band: Band, found: dict[str, float], mean: float, std: float) -> str | None:
    low, high = ELEVATION_RANGE_M
    if found["p1"] < low or found["p99"] > high:
        return (f"elevations from {found['p1']:,.0f} to {found['p99']:,.0f}, expected metres within "
                f"{low:,.0f}..{high:,.0f}: another unit (feet, centimetres) or a scale?")
    return None


def _angle(band: Band, found: dict[str, float], mean: float, std: float) -> str | None:
    if found["p1"] < 0 or found["p99"] > 90:
        return f"values from {found['p1']:.3g} to {found['p99']:.3g}, expected degrees within 0..90"
    return None


def _other(band: Band, found: dict[str, float], mean: float, std: float) -> str | None:
    problem = _ratio_problem(found["median"], mean, band.unit or "value")
    if problem is None and std > 0 and found["p99"] > mean + MAX_SIGMAS * std:
        problem = (f"99th percentile {found['p99']:.4g}, more than {MAX_SIGMAS:g} training standard "
                   f"deviations above the training mean {mean:.3g} ± {std:.3g}: another bit depth or scale?")
    return problem


#: The test of a band, by its unit.
RULES: dict[str, Callable[[Band, dict[str, float], float, float], str | None]] = {
    "reflectance": _reflectance,
    "m": _elevation,
    "deg": _angle,
}


def _offset_floor(found: dict[str, dict[str, float]], units: dict[str, str]) -> str | None:
    floors = {name: stats["p1"] for name, stats in found.items() if units[name] == "reflectance"}
    if len(floors) < 2:
        return None
    darkest = min(floors, key=lambda name: floors[name])
    if floors[darkest] < OFFSET_FLOOR:
        return None
    return (f"no band has dark pixels: the darkest 1 % of every band is above {OFFSET_FLOOR} reflectance "
            f"(lowest: {darkest} {floors[darkest]:.3f}), as when a Sentinel-2 product of processing "
            "baseline 04.00 or later is read without its offset (BOA_ADD_OFFSET -1000 DN = +0.1); give the "
            "product, its MTD file or STAC item rather than loose band files, or declare the offset")


def check_radiometry(reader: SceneReader, stats: ChannelStats, *, accept: bool = False) -> dict[str, Any]:
    """Compare a sample of the scene with the training statistics (see the module docstring).

    Args:
        reader: the open scene, mapped to the model's band set.
        stats: the checkpoint's normalisation statistics (stored units, by channel name).
        accept: map anyway (``--accept-radiometry``): problems become warnings.

    Returns:
        The ``radiometry`` section of ``summary.json``: ``status`` (``ok``, ``accepted``,
        ``no assessable pixels``), the processing levels, the sample size, per band the
        training mean and standard deviation and the sample's percentiles (physical units),
        and the problems found.

    Raises:
        InputError: an implausible band or scene (unless ``accept``), naming the scene.
    """
    band_set = reader.band_set
    checked = [i for i, (kind, _) in enumerate(reader.choices) if kind in ("image", "dem")]
    samples: dict[int, list[np.ndarray]] = {i: [] for i in checked}
    counts = {"assessable": 0, "data": 0, "no_elevation": 0}
    windows = sample_windows(reader.height, reader.width)
    for window in windows:
        bands, status = reader.read_with_status(window)
        data = status != STATUS_OUTSIDE
        counts["data"] += int(data.sum())
        counts["no_elevation"] += int((data & (status & FLAG_NO_ELEVATION > 0)).sum())
        assessable = status == STATUS_ASSESSABLE
        counts["assessable"] += int(assessable.sum())
        for i in checked:
            samples[i].append(bands[i][assessable] * band_set.bands[i].physical_per_unit)
    levels = {"scene": reader.source.processing_level or None, "model": band_set.processing_level or None}
    section: dict[str, Any] = {
        "status": "ok", "sample_windows": len(windows), "sample_pixels": counts["assessable"],
        "processing_level": levels, "bands": {}, "problems": [],
        "dem_coverage_of_sample": (None if reader.spec.dem is None or counts["data"] == 0
                                   else round(1 - counts["no_elevation"] / counts["data"], 4)),
    }
    if levels["scene"] and levels["model"] and levels["scene"] != levels["model"]:
        kind = {"L1C": "top-of-atmosphere", "L2A": "surface"}
        log.warning(
            "%s is a Level-%s product (%s reflectance) but the model was trained on Level-%s data (%s "
            "reflectance): the blue and coastal bands differ most; expect lower accuracy",
            reader.spec.image, levels["scene"][1:], kind[levels["scene"]], levels["model"][1:],
            kind[levels["model"]])
        section["processing_level"]["match"] = False
    if counts["assessable"] == 0:
        section["status"] = "no assessable pixels"
        log.warning("%s: no assessable pixel in the radiometry sample; nothing to compare", reader.spec.image)
        return section
    found: dict[str, dict[str, float]] = {}
    units: dict[str, str] = {}
    problems: list[str] = []
    for i in checked:
        band = band_set.bands[i]
        values = np.concatenate(samples[i]).astype(np.float64)
        channel = stats.names.index(band.name)
        mean = float(stats.mean[channel]) * band.physical_per_unit
        std = float(stats.std[channel]) * band.physical_per_unit
        found[band.name] = {k: float(np.percentile(values, q)) for k, q in PERCENTILES.items()}
        units[band.name] = band.unit
        problem = RULES.get(band.unit, _other)(band, found[band.name], mean, std)
        section["bands"][band.name] = {
            "unit": band.unit, "training_mean": _round(mean), "training_std": _round(std),
            **{k: _round(v) for k, v in found[band.name].items()}, "ok": problem is None,
        }
        if problem is not None:
            problems.append(f"band {band.name}: {problem}")
    scene_problem = _offset_floor(found, units)
    if scene_problem is not None:
        problems.append(scene_problem)
    section["problems"] = problems
    if problems:
        if not accept:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise InputError(f"implausible radiometry: {problems[0]}{more}; {ACCEPT_HINT}", reader.spec.image)
        section["status"] = "accepted"
        for problem in problems:
            log.warning("%s: radiometry accepted despite: %s", reader.spec.image, problem)
    return section


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else float(f"{value:.6g}")
