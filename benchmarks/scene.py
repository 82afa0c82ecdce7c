"""Scene-mapping benchmark: throughput and peak memory of ``predict_scene`` versus scene size.

Maps synthetic scenes (:func:`slidemap.data.synthetic.generate_scene`) of several sizes with
a demo-sized model and reports, per size: Mpx/s of the whole mapping (probability, mask,
polygons), Mpx/s of the probability pass alone, the ratio of the latter to a plain
reference (the bare model on one window in the same process, no I/O or blending), and the
peak resident memory above the baseline (RSS sampled every 20 ms). Then the growth of peak
memory per Mpx (least squares over sizes) and the extrapolated time of a full Sentinel-2
tile (10980 × 10980 px). Prints a table and writes JSON to ``benchmarks/results/``.

    python benchmarks/scene.py                          # 2048, 4096, 8192 px, random weights
    python benchmarks/scene.py --sizes 1024 2048 --checkpoint runs/demo/best.ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from slidemap.data.normalization import ChannelStats
from slidemap.data.synthetic import generate_scene
from slidemap.features import InputPipeline
from slidemap.inference.engine import Engine, TorchEngine
from slidemap.inference.mapping import MappingOptions, predict_scene
from slidemap.inference.scene import SceneSpec
from slidemap.inference.sliding import DEFAULT_OVERLAP_PX, DEFAULT_WINDOW_PX
from slidemap.models import build_model

S2_TILE_PX = 10980
DEMO_MODEL = ("unet_cbam", {"base_channels": 16, "depth": 3})
DEMO_FEATURES = ("ndvi", "ndmi", "gndvi", "bsi", "brightness", "slope", "elevation")
RESULTS = Path(__file__).resolve().parent / "results"


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def random_engine(bands: list[str] | None = None) -> TorchEngine:
    """The demo model (UNet-CBAM, 16 channels, depth 3) with random weights on l4s14 (or the
    ``bands`` of it) + 7 features."""
    pipeline = InputPipeline("l4s14", features=DEMO_FEATURES, bands=bands)
    torch.manual_seed(0)
    model = build_model(DEMO_MODEL[0], pipeline.in_channels, **DEMO_MODEL[1])
    n = pipeline.in_channels
    stats = ChannelStats(pipeline.channel_names, np.ones(n), np.ones(n))
    return TorchEngine(model, pipeline, stats, 0.5, DEMO_MODEL[0])


def reference_mpx_per_s(engine: Engine, window: int, repeats: int = 3) -> float:
    """Plain reference: the bare model on one ``window``² input (no I/O, features or blending)."""
    batch = np.zeros((1, engine.pipeline.in_channels, window, window), dtype=np.float32)
    engine.predict_logits(batch)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        engine.predict_logits(batch)
    return repeats * window * window / 1e6 / (time.perf_counter() - started)


def bench_size(engine: Engine, size: int, scenes: Path, out: Path, options: MappingOptions) -> dict[str, Any]:
    scene_dir = scenes / f"scene_{size}"
    if not (scene_dir / "image.tif").exists():
        generate_scene(scene_dir, size_px=size, seed=0)
    baseline = psutil.Process().memory_info().rss
    started = time.perf_counter()
    with PeakRss() as rss:
        summary = predict_scene(engine, SceneSpec(scene_dir / "image.tif", scene_dir / "dem.tif"),
                                out / f"map_{size}", options)
    seconds = time.perf_counter() - started
    mpx = size * size / 1e6
    return {
        "size_px": size,
        "megapixels": round(mpx, 3),
        "seconds": round(seconds, 2),
        "seconds_probability": summary["seconds"]["probability"],
        "mpx_per_s": round(mpx / seconds, 4),
        "mpx_per_s_probability": summary["megapixels_per_second"],
        "peak_rss_mb": round(rss.peak / 2**20, 1),
        "peak_above_baseline_mb": round((rss.peak - baseline) / 2**20, 1),
        "landslides": summary["count"],
        "n_windows": summary["window"]["n_windows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a trained checkpoint (default: the demo model with random weights)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_PX)
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP_PX)
    parser.add_argument("--scenes", type=Path, default=None, help="cache folder for generated scenes")
    parser.add_argument("--engine", choices=("onnx", "torch"), default="onnx",
                        help="inference runtime (default: onnx, as slidemap predict)")
    args = parser.parse_args()

    torch_engine = TorchEngine.from_checkpoint(args.checkpoint) if args.checkpoint else random_engine()
    engine: Engine = torch_engine
    if args.engine == "onnx":
        from slidemap.inference.onnx_export import OnnxEngine, export_bytes

        engine = OnnxEngine(export_bytes(torch_engine))
    weights = str(args.checkpoint) if args.checkpoint else "random weights (demo architecture, untrained)"
    options = MappingOptions(window=args.window, overlap=args.overlap)
    scenes = args.scenes or Path(tempfile.gettempdir()) / "slidemap-bench-scenes"
    reference = reference_mpx_per_s(engine, args.window)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            row = bench_size(engine, size, scenes, Path(tmp), options)
            row["ratio_to_reference"] = round(row["mpx_per_s_probability"] / reference, 3)
            rows.append(row)
            print(f"{size} px done in {row['seconds']} s", flush=True)
    mpx = np.array([r["megapixels"] for r in rows])
    peak = np.array([r["peak_above_baseline_mb"] for r in rows])
    growth = float(np.polyfit(mpx, peak, 1)[0]) if len(rows) > 1 else float("nan")
    tile_mpx = S2_TILE_PX**2 / 1e6
    tile_seconds = tile_mpx / rows[-1]["mpx_per_s"]
    result = {
        "model": f"{engine.model_name} {DEMO_MODEL[1] if not args.checkpoint else ''}".strip(),
        "weights": weights,
        "engine": args.engine,
        "window_px": args.window,
        "overlap_px": args.overlap,
        "reference_mpx_per_s": round(reference, 4),
        "rows": rows,
        "peak_growth_mb_per_mpx": round(growth, 3),
        "s2_tile_extrapolated_minutes": round(tile_seconds / 60, 1),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform()},
    }
    header = f"{'size':>6} {'Mpx':>7} {'s':>8} {'Mpx/s':>7} {'Mpx/s(prob)':>11} {'x ref':>6} {'peak MB':>8} {'+MB':>7}"
    print(f"model: {result['model']} — {weights}; engine {args.engine}; window {args.window}, "
          f"overlap {args.overlap}")
    print(header)
    for r in rows:
        print(f"{r['size_px']:>6} {r['megapixels']:>7.2f} {r['seconds']:>8.1f} {r['mpx_per_s']:>7.3f} "
              f"{r['mpx_per_s_probability']:>11.3f} {r['ratio_to_reference']:>6.2f} "
              f"{r['peak_rss_mb']:>8.0f} {r['peak_above_baseline_mb']:>7.0f}")
    print(f"reference (bare model, one window): {reference:.3f} Mpx/s")
    print(f"peak memory growth: {growth:.2f} MB per Mpx; Sentinel-2 tile ({S2_TILE_PX}² px): "
          f"~{tile_seconds / 60:.1f} min extrapolated")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    from slidemap.io.atomic import write_text_atomic

    path = write_text_atomic(RESULTS / f"scene-{stamp}.json", json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
