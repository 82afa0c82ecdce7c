"""What publishing the rasters as Cloud-Optimized GeoTIFFs costs, against plain tiled GeoTIFFs.

    python benchmarks/cog.py [--sizes 2048 4096] [--repeats 3]

For each size, writes a smooth float32 probability map and its uint8 mask (the layers of
``predict``: DEFLATE, 256 px tiles) strip by strip, twice, interleaved ``--repeats`` times
in this process: as a plain tiled GeoTIFF (what ``predict`` wrote before) and through
:class:`slidemap.io.cog.CogWriter` (the same, then GDAL's COG driver with overviews). Prints
the median seconds, the ratio COG / plain and the file sizes; writes
``benchmarks/results/cog.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from scipy.ndimage import gaussian_filter

from slidemap.inference.mapping import MASK_LAYER, PROBABILITY_LAYER
from slidemap.io.cog import CogWriter, RasterLayer
from slidemap.io.geotiff import RasterInfo, output_profile

RESULTS = Path(__file__).resolve().parent / "results"
STRIP_ROWS = 512


def _grid(size: int) -> RasterInfo:
    return RasterInfo(path=Path("grid"), crs=rasterio.crs.CRS.from_epsg(32633),
                      transform=from_origin(500_000, 4_200_000, 10, 10), width=size, height=size,
                      count=1, dtypes=("float32",), nodata=None, descriptions=("",), scales=(1.0,))


def _strips(size: int, seed: int = 0) -> list[np.ndarray]:
    """A smooth random probability map in strips (blobs of ~60 m, like a model's output)."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.random((size, size), dtype=np.float32), 6.0)
    probability = ((field - field.min()) / np.ptp(field)).astype(np.float32)
    return [probability[r : r + STRIP_ROWS] for r in range(0, size, STRIP_ROWS)]


def _write_plain(path: Path, info: RasterInfo, layer: RasterLayer, strips: list[np.ndarray]) -> None:
    with rasterio.open(path, "w", **output_profile(info, layer.dtype, layer.nodata)) as dst:
        for i, strip in enumerate(strips):
            dst.write(strip.astype(layer.dtype), 1,
                      window=Window(0, i * STRIP_ROWS, strip.shape[1], strip.shape[0]))


def _write_cog(path: Path, info: RasterInfo, layer: RasterLayer, strips: list[np.ndarray]) -> None:
    with CogWriter(path, info, layer) as writer:
        for i, strip in enumerate(strips):
            writer.write(strip, i * STRIP_ROWS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096], help="scene sides, px")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (median)")
    args = parser.parse_args(argv)
    rows = []
    print("| size px | raster | plain s | COG s | COG / plain | plain MB | COG MB | overviews |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory(prefix="slidemap-cog-bench-") as tmp:
        for size in args.sizes:
            info = _grid(size)
            probability = _strips(size)
            mask = [(p >= 0.6).astype(np.uint8) for p in probability]
            for name, layer, strips in (("probability", PROBABILITY_LAYER, probability),
                                        ("mask", MASK_LAYER, mask)):
                times: dict[str, list[float]] = {"plain": [], "cog": []}
                for repeat in range(args.repeats):
                    for kind, write in (("plain", _write_plain), ("cog", _write_cog)):
                        path = Path(tmp) / f"{kind}_{name}_{repeat}.tif"
                        started = time.perf_counter()
                        write(path, info, layer, strips)
                        times[kind].append(time.perf_counter() - started)
                plain_s, cog_s = (float(np.median(times[k])) for k in ("plain", "cog"))
                sizes = {k: (Path(tmp) / f"{k}_{name}_0.tif").stat().st_size / 1e6 for k in times}
                with rasterio.open(Path(tmp) / f"cog_{name}_0.tif") as src:
                    overviews = src.overviews(1)
                row = {"size_px": size, "raster": name, "plain_s": plain_s, "cog_s": cog_s,
                       "ratio": cog_s / plain_s, "plain_mb": sizes["plain"],
                       "cog_mb": sizes["cog"], "overviews": overviews}
                rows.append(row)
                print(f"| {size} | {name} | {plain_s:.2f} | {cog_s:.2f} | {cog_s / plain_s:.2f} | "
                      f"{sizes['plain']:.1f} | {sizes['cog']:.1f} | {overviews} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cog.json").write_text(json.dumps(
        {"machine": platform.processor() or platform.machine(), "repeats": args.repeats,
         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
