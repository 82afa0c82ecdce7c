"""What true ground areas cost while mapping, and how far a nominal ``a · e`` area is off.

For strips of a Sentinel-2 tile (512 rows × 10980 px) in several CRSs, times in one process,
interleaved, medians over the strips:

- **ground**: what a mapping strip now does for areas: the five status masks of the area
  tally (:meth:`slidemap.io.ground.GroundAreas.mask_area_m2`) plus the areas of the
  polygons' pixels (:meth:`~slidemap.io.ground.GroundAreas.label_areas_m2`);
- **nominal**: the former count × constant pixel area (:func:`former_pixel_area`).

It also reports the error of the nominal area against the ground area (the bug the ground
areas fix). Prints a table and writes ``benchmarks/results/ground-areas-<time>.json``.

    python benchmarks/ground_areas.py [--strips 6]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import pyproj
from affine import Affine
from rasterio.crs import CRS

from slidemap.io.atomic import write_json_atomic
from slidemap.io.ground import GroundAreas

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH, ROWS = 10980, 512


def _mercator(lat: float) -> tuple[float, float]:
    return pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(10.0, lat)


GRIDS: dict[str, tuple[str, Affine]] = {
    "UTM 33N, 10 m": ("EPSG:32633", Affine(10, 0, 500_000, 0, -10, 4_200_000)),
    "Web Mercator 60° N, 10 m": ("EPSG:3857", Affine(10, 0, _mercator(60)[0], 0, -10, _mercator(60)[1])),
    "EPSG:4326, 1e-4°, 45° N": ("EPSG:4326", Affine(1e-4, 0, 10.0, 0, -1e-4, 45.0)),
    "UTM rotated 30°": ("EPSG:32633", Affine.translation(500_000, 4_200_000) * Affine.rotation(30)
                        * Affine.scale(10, -10)),
}


def former_pixel_area(crs: CRS, transform: Affine) -> float:
    """The pixel area slidemap used before ground areas: ``|a| · |e|`` in metres, with
    111 320 m per degree (times cos φ across) for a geographic CRS."""
    if crs.is_geographic:
        lat = (transform @ (WIDTH / 2, WIDTH / 2))[1]
        return abs(transform.a) * 111_320 * math.cos(math.radians(lat)) * abs(transform.e) * 111_320
    return abs(transform.a * transform.e)


def measure(crs: str, transform: Affine, strips: int) -> dict[str, float]:
    areas = GroundAreas(CRS.from_string(crs), transform, WIDTH, WIDTH)
    nominal_pixel = former_pixel_area(CRS.from_string(crs), transform)
    rng = np.random.default_rng(0)
    status = rng.integers(0, 4, (ROWS, WIDTH))
    ids = (rng.random((ROWS, WIDTH)) < 0.02).astype(np.int32)
    ground_s, nominal_s = [], []
    for k in range(strips):
        row = (k + 1) * ROWS
        started = time.perf_counter()
        for value in range(4):
            areas.mask_area_m2(status == value, row)
        areas.mask_area_m2(status != 0, row)
        areas.label_areas_m2(ids, 1, row)
        ground_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        for value in range(4):
            float(np.count_nonzero(status == value)) * nominal_pixel
        float(np.count_nonzero(status != 0)) * nominal_pixel
        np.bincount(ids[ids > 0])
        nominal_s.append(time.perf_counter() - started)
    strip_ground = float(np.sum(areas.pixel_areas_m2(ROWS, 0, ROWS, WIDTH)))
    return {
        "ground_ms_per_strip": 1e3 * statistics.median(ground_s),
        "nominal_ms_per_strip": 1e3 * statistics.median(nominal_s),
        "ratio": statistics.median(ground_s) / max(statistics.median(nominal_s), 1e-9),
        "seconds_per_tile": statistics.median(ground_s) * WIDTH / ROWS,
        "nominal_over_ground": ROWS * WIDTH * nominal_pixel / strip_ground,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strips", type=int, default=6)
    args = parser.parse_args()
    results = {name: measure(crs, transform, args.strips) for name, (crs, transform) in GRIDS.items()}
    print(f"| grid | ground ms/strip | nominal ms/strip | ratio | ground s per {WIDTH} px tile | nominal / ground area |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['ground_ms_per_strip']:.0f} | {r['nominal_ms_per_strip']:.1f} | "
              f"{r['ratio']:.0f} | {r['seconds_per_tile']:.2f} | {r['nominal_over_ground']:.4g} |")
    path = RESULTS / f"ground-areas-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json_atomic(path, {"strip": [ROWS, WIDTH], "strips": args.strips, "grids": results})
    print(path)


if __name__ == "__main__":
    main()
