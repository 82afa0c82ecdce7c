"""bf16-mixed against float32 training on the demo data: speed and final F1, several seeds.

Trains the demo's UNet-CBAM (``configs/demo.yaml``: width 16, depth 3, 20 epochs) on the
demo's synthetic dataset once per seed and precision (``trainer.precision: 32-true`` and
``bf16-mixed``), runs interleaved (seed 0 fp32, seed 0 bf16, seed 1 fp32, ...) so machine
drift hits both alike, and scores each ``best.ckpt`` on the test split in float32. Reports
per precision the median seconds per epoch (wall, and the process's CPU time: with
``OMP_NUM_THREADS=1`` on a shared machine the robust one), the mean and spread of the test
F1, and the ratios. Prints a table and writes JSON (``--out``); the run folders stay in
``--work`` (their ``best.ckpt`` are the checkpoints ``benchmarks/speed.py --precision``
reads for accuracy).

    python benchmarks/training_precision.py                   # 3 seeds, demo model
    python benchmarks/training_precision.py --seeds 0 --epochs 4 --model unet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slidemap.data.synthetic import generate_dataset
from slidemap.io.atomic import write_text_atomic
from slidemap.training.run import train
from slidemap.workflows.configs import load_comparison
from slidemap.workflows.evaluate import evaluate_checkpoint

PRECISIONS = ("32-true", "bf16-mixed")
RESULTS = Path(__file__).resolve().parent / "results" / "training_precision.json"


def demo_experiment(model: str, seed: int, precision: str, data: Path, epochs: int | None):
    """The demo comparison's experiment for ``model`` with a seed and a precision."""
    overrides = [f"base.trainer.seed={seed}", f"base.trainer.precision={precision}",
                 "base.trainer.progress=false", f"base.data.root={data}"]
    if epochs is not None:
        overrides.append(f"base.trainer.max_epochs={epochs}")
    experiments = load_comparison("demo.yaml", overrides).experiments()
    return next(e for e in experiments.values() if e.model.name == model)


def run_one(model: str, seed: int, precision: str, data: Path, work: Path, epochs: int | None) -> dict[str, Any]:
    config = demo_experiment(model, seed, precision, data, epochs)
    run_dir = work / f"{model}_{precision}_seed{seed}"
    cpu_started = time.process_time()
    result = train(config, run_dir, overwrite=True)
    cpu_seconds = time.process_time() - cpu_started
    evaluation = evaluate_checkpoint(result.best_checkpoint, data, "test")
    epochs_run = max(len(result.history), 1)
    return {"model": model, "seed": seed, "precision": precision, "epochs": len(result.history),
            "seconds": round(result.seconds, 1),
            "seconds_per_epoch": round(result.seconds / epochs_run, 2),
            "cpu_seconds_per_epoch": round(cpu_seconds / epochs_run, 2),
            "val_best_f1": round(max(row.get("val_best_f1", 0.0) for row in result.history), 4),
            "test_f1": round(float(evaluation.metrics["f1"]), 4),
            "test_iou": round(float(evaluation.metrics["iou"]), 4),
            "checkpoint": str(result.best_checkpoint), "load_average": round(os.getloadavg()[0], 2)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for precision in PRECISIONS:
        mine = [r for r in rows if r["precision"] == precision]
        if not mine:
            continue
        f1 = [r["test_f1"] for r in mine]
        out[precision] = {"runs": len(mine),
                          "seconds_per_epoch_median": round(statistics.median(r["seconds_per_epoch"] for r in mine), 2),
                          "cpu_seconds_per_epoch_median": round(statistics.median(r["cpu_seconds_per_epoch"] for r in mine), 2),
                          "test_f1_mean": round(statistics.mean(f1), 4),
                          "test_f1_min": min(f1), "test_f1_max": max(f1)}
    if all(p in out for p in PRECISIONS):
        fp32, bf16 = out["32-true"], out["bf16-mixed"]
        out["bf16_speedup"] = round(fp32["seconds_per_epoch_median"] / bf16["seconds_per_epoch_median"], 3)
        out["bf16_speedup_cpu_time"] = round(fp32["cpu_seconds_per_epoch_median"] / bf16["cpu_seconds_per_epoch_median"], 3)
        out["f1_difference"] = round(bf16["test_f1_mean"] - fp32["test_f1_mean"], 4)
        out["fp32_seed_spread"] = round(fp32["test_f1_max"] - fp32["test_f1_min"], 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="unet_cbam", help="registry name of a demo model")
    parser.add_argument("--epochs", type=int, default=None, help="override the demo's 20 epochs")
    parser.add_argument("--work", type=Path, default=Path("runs/training_precision"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    data = args.work / "data"
    if not (data / "synthetic.json").is_file():
        patches = load_comparison("demo.yaml").synthetic_patches
        generate_dataset(data, n_patches=patches, seed=0)
    started = time.perf_counter()
    rows = []
    for seed in args.seeds:
        for precision in PRECISIONS:
            rows.append(run_one(args.model, seed, precision, data, args.work, args.epochs))
            print(json.dumps(rows[-1]), flush=True)
    summary = summarise(rows)
    print("| precision | s/epoch (median) | CPU s/epoch | test F1 mean (min-max) |\n|---|---:|---:|---:|")
    for precision in PRECISIONS:
        s = summary.get(precision)
        if s:
            print(f"| {precision} | {s['seconds_per_epoch_median']} | {s['cpu_seconds_per_epoch_median']} | "
                  f"{s['test_f1_mean']:.4f} ({s['test_f1_min']:.4f}-{s['test_f1_max']:.4f}) |")
    print({k: v for k, v in summary.items() if k not in PRECISIONS})
    result = {"rows": rows, "summary": summary, "seconds": round(time.perf_counter() - started, 1),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__}}
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
