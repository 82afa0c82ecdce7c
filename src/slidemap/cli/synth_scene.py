"""``slidemap synth-scene``: a synthetic Sentinel-2 scene with DEM and labels as GeoTIFFs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "write a synthetic GeoTIFF scene: image.tif (12 bands), dem.tif (30 m), labels.tif"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, help="folder to write the three GeoTIFFs into"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=2048,
        help="scene width and height in 10 m pixels (default 2048)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--product", choices=("L1C", "L2A"), default=None,
                        help="also write the image as a Sentinel-2 .SAFE product of this level "
                             "(baseline 05.09, JPEG 2000 at 10/20/60 m; built in memory)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import rasterio

    from slidemap.data.synthetic import generate_scene

    start = time.perf_counter()
    paths = generate_scene(args.out, size_px=args.size, seed=args.seed)
    landslide = valid = 0
    with rasterio.open(paths["labels"]) as labels:
        for _, window in labels.block_windows(1):
            block = labels.read(1, window=window)
            landslide += int(np.count_nonzero(block == 1))
            valid += int(np.count_nonzero(block != 255))
    if args.product:
        from slidemap.data.synthetic.sentinel2 import Scene10m, write_safe

        paths["product"] = write_safe(args.out, Scene10m.from_geotiff(paths["image"]), level=args.product)
    print(
        f"{args.out}: {args.size}x{args.size} px scene ({', '.join(p.name for p in paths.values())}), "
        f"{100 * landslide / max(valid, 1):.1f}% landslide pixels, {time.perf_counter() - start:.1f} s"
    )
    return 0
