"""Scene-mapping benchmark: the whole job against the bare network, per engine and precision.

Maps synthetic scenes (:func:`slidemap.data.synthetic.generate_scene`) of several sizes with
the demo's model (UNet-CBAM, 16 channels, depth 3; random weights unless ``--checkpoint``),
**each size in a fresh process** (so peak memory is that size's alone), and reports per size:

* the whole job's rate (probability, mask, polygons; Mpx of scene per second);
* the bare network's rate on one window of the job's window size, timed in the same
  process just before and after the job (the mean), and the job's rate as a fraction of it;
* the network's share of the job (seconds inside ``predict_logits`` / job seconds) and the
  overlap factor (window pixels predicted / scene pixels: with window 512 and overlap 64 a
  pixel is predicted about (512/448)^2 = 1.3 times, which caps the fraction above at ~0.77);
* peak resident memory of the process (``ru_maxrss``) and above its baseline (engine loaded,
  before mapping); then the growth of peak memory per Mpx (least squares over sizes) and the
  time of a full Sentinel-2 tile (10980 x 10980 px) extrapolated from the largest size.

Prints a table and writes JSON to ``benchmarks/results/`` (or ``--out``)::

    python benchmarks/scene.py                                    # 2048, 4096, 8192 px, --engine auto, fp32
    python benchmarks/scene.py --precision bf16 --sizes 2048 4096
    python benchmarks/scene.py --checkpoint runs/demo/runs/unet-cbam/best.ckpt --engine onnx
    python benchmarks/scene.py --threads 1 --clock cpu             # on a machine shared with other jobs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slidemap.data.normalization import ChannelStats
from slidemap.data.synthetic import generate_dataset, generate_scene
from slidemap.features import InputPipeline
from slidemap.inference.engine import (
    AUTO,
    ENGINE_KINDS,
    PRECISIONS,
    Engine,
    TorchEngine,
)
from slidemap.inference.mapping import MappingOptions, predict_scene
from slidemap.inference.predictor import engine_kind
from slidemap.inference.scene import SceneSpec
from slidemap.inference.sliding import DEFAULT_OVERLAP_PX, DEFAULT_WINDOW_PX, WindowPlan
from slidemap.models import build_model

S2_TILE_PX = 10980
DEMO_MODEL = ("unet_cbam", {"base_channels": 16, "depth": 3})
DEMO_FEATURES = ("ndvi", "ndmi", "gndvi", "bsi", "brightness", "slope", "elevation")
RESULTS = Path(__file__).resolve().parent / "results"
CALIBRATION_PATCHES = 64


def random_engine(bands: list[str] | None = None, precision: str = "fp32") -> TorchEngine:
    """The demo model (UNet-CBAM, 16 channels, depth 3) with random weights on l4s14 (or the
    ``bands`` of it) + 7 features."""
    pipeline = InputPipeline("l4s14", features=DEMO_FEATURES, bands=bands)
    torch.manual_seed(0)
    model = build_model(DEMO_MODEL[0], pipeline.in_channels, **DEMO_MODEL[1])
    n = pipeline.in_channels
    stats = ChannelStats(pipeline.channel_names, np.ones(n), np.ones(n))
    return TorchEngine(model, pipeline, stats, 0.5, DEMO_MODEL[0], precision=precision)


def build_engine(kind: str, precision: str, checkpoint: Path | None, calibration: Path | None,
                 work: Path) -> Engine:
    """The engine ``kind``/``precision`` of ``checkpoint`` (or of the random demo model; its
    int8 calibration then comes from a small synthetic dataset made in ``work``)."""
    from slidemap.inference.engine import EngineSpec, load_engine
    from slidemap.inference.onnx_export import (
        OnnxEngine,
        calibration_inputs,
        export_bytes,
        quantize_int8,
    )

    if checkpoint is not None:
        return load_engine(EngineSpec(checkpoint, kind, precision=precision, calibration=calibration))  # type: ignore[arg-type]
    torch_engine = random_engine(precision="bf16" if precision == "bf16" else "fp32")
    if kind == "torch":
        return torch_engine
    model = export_bytes(torch_engine)
    if precision == "int8":
        data = calibration or work / "calibration"
        if calibration is None and not (data / "synthetic.json").is_file():
            generate_dataset(data, n_patches=CALIBRATION_PATCHES, seed=0)
        model = quantize_int8(model, calibration_inputs(torch_engine, data, CALIBRATION_PATCHES),
                              {"source": str(data)})
    return OnnxEngine(model)


class CountingEngine:
    """Wraps an engine and adds up the wall seconds spent in ``predict_logits``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seconds = 0.0
        self.pixels = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def predict_logits(self, batch: np.ndarray) -> np.ndarray:
        started = clock()
        out = self.engine.predict_logits(batch)
        self.seconds += clock() - started
        self.pixels += batch.shape[0] * batch.shape[-2] * batch.shape[-1]
        return out


#: ``--clock``: wall time, or the process's CPU time (with ``--threads 1``: on a machine
#: shared with other jobs it leaves out the time the scheduler gave to others).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def bare_mpx_per_s(engine: Engine, side: int, repeats: int = 3) -> float:
    """The bare network on one ``side``² window (no I/O, features or blending): Mpx/s."""
    batch = np.zeros((1, engine.pipeline.in_channels, side, side), dtype=np.float32)
    engine.predict_logits(batch)  # warm-up
    started = clock()
    for _ in range(repeats):
        engine.predict_logits(batch)
    return repeats * side * side / 1e6 / (clock() - started)


def map_one_size(args: argparse.Namespace) -> dict[str, Any]:
    """The child: build the engine, map one scene, report (runs in a fresh process)."""
    size = args.child
    scene_dir = args.scenes / f"scene_{size}"
    if not (scene_dir / "image.tif").exists():
        generate_scene(scene_dir, size_px=size, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        engine = CountingEngine(build_engine(args.engine, args.precision, args.checkpoint, args.calibration,
                                             args.scenes))
        plan = WindowPlan.create(size, size, args.window, args.overlap, engine.size_multiple)
        bare_before = bare_mpx_per_s(engine.engine, plan.window)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        options = MappingOptions(window=args.window, overlap=args.overlap)
        started = clock()
        summary = predict_scene(engine, SceneSpec(scene_dir / "image.tif", scene_dir / "dem.tif"),
                                Path(tmp) / "map", options)
        seconds = clock() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bare = (bare_before + bare_mpx_per_s(engine.engine, plan.window)) / 2
    mpx = size * size / 1e6
    return {
        "size_px": size, "megapixels": round(mpx, 3), "seconds": round(seconds, 2),
        "mpx_per_s": round(mpx / seconds, 4),
        "bare_mpx_per_s": round(bare, 4), "fraction_of_bare": round(mpx / seconds / bare, 3),
        "network_seconds": round(engine.seconds, 2), "network_share": round(engine.seconds / seconds, 3),
        "overlap_factor": round(engine.pixels / 1e6 / mpx, 3), "window_px": plan.window,
        "n_windows": summary["window"]["n_windows"], "peak_rss_mb": round(peak, 1),
        "peak_above_baseline_mb": round(peak - baseline, 1), "landslides": summary["count"],
        "engine": {"kind": engine_kind(engine.engine), "precision": getattr(engine.engine, "precision", "fp32")},
    }


def resolve_kind(args: argparse.Namespace) -> str:
    """``auto``: the faster engine for the precision on one window (the rule ``predict`` uses)."""
    if args.engine != AUTO:
        return args.engine
    if args.checkpoint is not None:
        from slidemap.inference.engine import EngineSpec, choose_engine

        spec, _ = choose_engine(EngineSpec(args.checkpoint, precision=args.precision, calibration=args.calibration),
                                batch=1, side=args.window)
        return spec.kind
    timings = {}
    for kind in ENGINE_KINDS:
        try:
            engine = build_engine(kind, args.precision, None, args.calibration, args.scenes)
        except Exception:  # noqa: BLE001 - a pair that does not exist (e.g. onnx bf16)
            continue
        timings[kind] = bare_mpx_per_s(engine, args.window)
    return max(timings, key=timings.__getitem__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a trained checkpoint (default: the demo model with random weights)")
    parser.add_argument("--engine", choices=(AUTO, *ENGINE_KINDS), default=AUTO)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--calibration", type=Path, default=None, help="int8 calibration patches")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_PX)
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP_PX)
    parser.add_argument("--scenes", type=Path, default=Path(tempfile.gettempdir()) / "slidemap-bench-scenes",
                        help="cache folder for generated scenes")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/results/scene-*.json)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall time (default), or process CPU time (with --threads 1, on a busy machine)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use it with --threads 1")
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    if args.child is not None:
        print(json.dumps(map_one_size(args)))
        return

    args.scenes.mkdir(parents=True, exist_ok=True)
    kind = resolve_kind(args)
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", str(size), "--engine", kind, "--precision", args.precision,
                   "--window", str(args.window), "--overlap", str(args.overlap), "--scenes", str(args.scenes),
                   "--threads", str(args.threads), "--clock", args.clock]
        if args.checkpoint is not None:
            command += ["--checkpoint", str(args.checkpoint)]
        if args.calibration is not None:
            command += ["--calibration", str(args.calibration)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"scene benchmark for {size} px failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{size} px done in {rows[-1]['seconds']} s", flush=True)
    mpx = np.array([r["megapixels"] for r in rows])
    peak = np.array([r["peak_rss_mb"] for r in rows])
    growth = float(np.polyfit(mpx, peak, 1)[0]) if len(rows) > 1 else float("nan")
    tile_seconds = S2_TILE_PX**2 / 1e6 / rows[-1]["mpx_per_s"]
    weights = str(args.checkpoint) if args.checkpoint else "random weights (demo architecture, untrained)"
    result = {
        "model": f"{DEMO_MODEL[0]} {DEMO_MODEL[1]}" if not args.checkpoint else str(args.checkpoint),
        "weights": weights, "engine": kind, "precision": args.precision,
        "window_px": args.window, "overlap_px": args.overlap, "threads": args.threads, "clock": args.clock,
        "rows": rows,
        "peak_growth_mb_per_mpx": round(growth, 3),
        "s2_tile_extrapolated_minutes": round(tile_seconds / 60, 2),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "load_average": [round(v, 2) for v in os.getloadavg()]},
    }
    print(f"model: {result['model']} ({weights}); engine {kind} {args.precision}; window {args.window}, "
          f"overlap {args.overlap}")
    print(f"{'size':>6} {'Mpx':>7} {'s':>7} {'Mpx/s':>7} {'bare':>7} {'x bare':>6} "
          f"{'net %':>6} {'overlap':>7} {'peak MB':>8} {'+MB':>6}")
    for r in rows:
        print(f"{r['size_px']:>6} {r['megapixels']:>7.2f} {r['seconds']:>7.1f} {r['mpx_per_s']:>7.3f} "
              f"{r['bare_mpx_per_s']:>7.3f} {r['fraction_of_bare']:>6.2f} "
              f"{100 * r['network_share']:>6.1f} {r['overlap_factor']:>7.2f} {r['peak_rss_mb']:>8.0f} "
              f"{r['peak_above_baseline_mb']:>6.0f}")
    print(f"peak memory growth: {growth:.2f} MB per Mpx (separate processes); Sentinel-2 tile "
          f"({S2_TILE_PX}² px): ~{tile_seconds / 60:.1f} min extrapolated")
    from slidemap.io.atomic import write_text_atomic

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = args.out or RESULTS / f"scene-{kind}-{args.precision}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
