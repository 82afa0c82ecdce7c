"""Sentinel-2 inputs: mapping time per input format, and the radiometry check's margins.

1. One synthetic scene (``--size`` px) is written as the multi-band GeoTIFF of
   ``slidemap synth-scene`` (the reference) and, with the same digital numbers, as an L2A
   ``.SAFE`` product (JPEG 2000 at 10/20/60 m, baseline 05.09 offset), its zip, a folder of
   per-band COGs and a STAC item over them. Each is mapped by ``predict_scene`` with the
   demo architecture (random weights, every l4s14 band but B10 + 7 features, ONNX Runtime as
   ``slidemap predict``); the table gives seconds, the ratio to the GeoTIFF run (same process,
   interleaved order), the radiometry check's seconds and the largest probability difference.
2. The radiometry check's statistics on legitimate scenes (the synthetic scene, and the 14
   real Landslide4Sense patches when ``../shared/data`` is present) against its thresholds:
   the largest factor between a band's median and the training mean (refused above 100),
   the lowest 5th percentile (refused below -0.05) and the darkest band's 1st percentile
   (refused at or above 0.09 in every band).

    python benchmarks/sentinel2_inputs.py [--size 1024] [--repeats 2]

Prints two tables and writes JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scene import RESULTS, random_engine  # noqa: E402

from slidemap.bands import SENTINEL2_ADD_OFFSET_DN, get_band_set  # noqa: E402
from slidemap.data.normalization import ChannelStats  # noqa: E402
from slidemap.data.synthetic import generate_scene  # noqa: E402
from slidemap.data.synthetic.sentinel2 import (  # noqa: E402
    Scene10m,
    write_band_folder,
    write_safe,
    write_stac_item,
    zip_product,
)
from slidemap.inference.mapping import MappingOptions, predict_scene  # noqa: E402
from slidemap.inference.radiometry import NEGATIVE_REFLECTANCE, OFFSET_FLOOR, check_radiometry  # noqa: E402
from slidemap.inference.scene import SceneReader, SceneSpec  # noqa: E402
from slidemap.io.atomic import write_text_atomic  # noqa: E402

L2A = [b for b in get_band_set("l4s14").names if b != "B10"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "l4s-real-unlabelled"


def write_inputs(root: Path, size: int) -> dict[str, Path]:
    paths = generate_scene(root / "synthetic", size_px=size, seed=0)
    scene = Scene10m.from_geotiff(paths["image"]).nodata_on_blocks(6)
    height, width = scene.shape
    with rasterio.open(paths["image"]) as src:
        profile = src.profile
    image = root / "image.tif"
    with rasterio.open(image, "w", **profile) as dst:
        for i, name in enumerate(scene.bands, start=1):
            dst.write(scene.bands[name], i)
            dst.set_band_description(i, name)
    safe = write_safe(root, scene, level="L2A", baseline="05.09")
    cogs = write_band_folder(root / "cogs", scene, naming="esa", offset_dn=SENTINEL2_ADD_OFFSET_DN)
    return {
        "multi-band GeoTIFF": image, ".SAFE (JP2)": safe, "zipped .SAFE": zip_product(safe),
        "per-band COGs": root / "cogs",
        "STAC item (COGs)": write_stac_item(root / "item.json", cogs, offset_dn=SENTINEL2_ADD_OFFSET_DN),
        "dem": paths["dem"],
    }


def time_formats(inputs: dict[str, Path], engine: Any, out: Path, repeats: int) -> list[dict[str, Any]]:
    options = MappingOptions()
    formats = [k for k in inputs if k != "dem"]
    seconds: dict[str, list[float]] = {k: [] for k in formats}
    radiometry: dict[str, list[float]] = {k: [] for k in formats}
    probability: dict[str, np.ndarray] = {}
    for _ in range(repeats):  # interleaved: the GeoTIFF reference is timed next to each format
        for name in formats:
            spec = SceneSpec(inputs[name], inputs["dem"])
            started = time.perf_counter()
            with SceneReader(spec, engine.pipeline.band_set) as reader:
                check_radiometry(reader, engine.stats)
            radiometry[name].append(time.perf_counter() - started)
            target = out / name.replace(" ", "_")
            started = time.perf_counter()
            predict_scene(engine, spec, target, options)
            seconds[name].append(time.perf_counter() - started)
            with rasterio.open(target / "probability.tif") as src:
                probability[name] = src.read(1)
    reference = min(seconds[formats[0]])
    rows = []
    for name in formats:
        best = min(seconds[name])
        rows.append({"input": name, "seconds": round(best, 2), "ratio_to_geotiff": round(best / reference, 2),
                     "radiometry_check_seconds": round(min(radiometry[name]), 3),
                     "max_abs_probability_difference": float(np.nanmax(np.abs(
                         probability[name] - probability[formats[0]])))})
    return rows


def margins(section: dict[str, Any]) -> dict[str, Any]:
    bands = {k: v for k, v in section["bands"].items() if v["unit"] == "reflectance"}
    factors = {k: max(v["median"] / v["training_mean"], v["training_mean"] / v["median"]) for k, v in bands.items()}
    worst = max(factors, key=factors.get)
    lowest = min(bands, key=lambda k: bands[k]["p5"])
    darkest = min(bands, key=lambda k: bands[k]["p1"])
    return {"status": section["status"], "largest_median_factor": [worst, round(factors[worst], 2)],
            "lowest_p5": [lowest, bands[lowest]["p5"]], "darkest_p1": [darkest, bands[darkest]["p1"]]}


def real_margins(root: Path, stats_engine: Any) -> dict[str, Any] | None:
    from slidemap.data.mosaic import write_patch_mosaic

    files = sorted(glob.glob(str(SHARED / "image_*.h5")))
    if not files:
        return None
    paths = write_patch_mosaic(files, root / "real")
    with SceneReader(SceneSpec(paths["image"], paths["dem"]), stats_engine.pipeline.band_set) as reader:
        return margins(check_radiometry(reader, stats_engine.stats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from slidemap.inference.onnx_export import OnnxEngine, export_bytes

    torch_engine = random_engine(L2A)
    n = torch_engine.pipeline.in_channels
    l4s_means = np.zeros(n)  # training means of Landslide4Sense's order: 1 stored unit per band
    l4s_means[: len(L2A)] = 1.0
    torch_engine.stats = ChannelStats(torch_engine.pipeline.channel_names, l4s_means, np.full(n, 0.5))
    engine = OnnxEngine(export_bytes(torch_engine))
    full_engine = random_engine()  # every l4s14 band, for the real patches (they have B10)
    full_engine.stats = ChannelStats(full_engine.pipeline.channel_names,
                                     np.r_[np.ones(14), np.zeros(7)], np.full(21, 0.5))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = write_inputs(root, args.size)
        rows = time_formats(inputs, engine, root / "maps", args.repeats)
        with SceneReader(SceneSpec(inputs["multi-band GeoTIFF"], inputs["dem"]), engine.pipeline.band_set) as reader:
            synthetic = margins(check_radiometry(reader, engine.stats))
        real = real_margins(root, full_engine)
    result = {"size_px": args.size, "repeats": args.repeats, "formats": rows,
              "thresholds": {"median_factor": 100, "p5": NEGATIVE_REFLECTANCE, "p1_floor": OFFSET_FLOOR},
              "radiometry_margins": {"synthetic": synthetic, "real_landslide4sense": real}}
    print(f"{args.size}² px scene, demo architecture (random weights, 13 bands + 7 features), ONNX Runtime")
    print(f"{'input':<20} {'s':>7} {'x GeoTIFF':>9} {'check s':>8} {'max |dp|':>9}")
    for r in rows:
        print(f"{r['input']:<20} {r['seconds']:>7.2f} {r['ratio_to_geotiff']:>9.2f} "
              f"{r['radiometry_check_seconds']:>8.3f} {r['max_abs_probability_difference']:>9.1e}")
    print(f"{'scene':<22} {'status':<8} {'largest median factor':<24} {'lowest p5':<18} {'darkest p1':<18}")
    for name, m in result["radiometry_margins"].items():
        if m is None:
            print(f"{name:<22} (../shared/data absent)")
            continue
        print(f"{name:<22} {m['status']:<8} {m['largest_median_factor'][0]:>4} {m['largest_median_factor'][1]:>8.2f}"
              f"{'':<11} {m['lowest_p5'][0]:>4} {m['lowest_p5'][1]:>8.4f}     {m['darkest_p1'][0]:>4} "
              f"{m['darkest_p1'][1]:>8.4f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = write_text_atomic(RESULTS / f"sentinel2-inputs-{time.strftime('%Y%m%d-%H%M%S')}.json",
                             json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
