"""Cross-area accuracy on real RGB + DSM landslide patches: train on one area, score the other.

    python benchmarks/real_rgbd.py [--data DIR] [--models unet,unet_cbam] [--epochs N]
                                   [--width W] [--work runs/real_rgbd]

Trains each model of ``configs/rgbd/`` in both directions (area A → B and B → A) with the
config as it ships (only the train/validation folders are swapped for B → A), then scores
``last.ckpt`` on every pixel of the other area at the config's fixed threshold. Nothing is
chosen on the scored area: no early stopping, no best epoch, no threshold (validation runs
on one batch only, to keep Lightning's loop). For reference only, the table also gives the
F1 an oracle would reach with the best threshold *of the scored area* (optimistic by design).

Reads ``../shared/data/rgbd-landslides`` beside the repository (or ``--data``); when it is
absent, says so and exits 0. Prints a Markdown table and writes
``benchmarks/results/real_rgbd.json`` (metrics, seconds per run, machine and load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slidemap.evaluation.curves import compute_metrics
from slidemap.io.atomic import write_text_atomic
from slidemap.training.run import train
from slidemap.workflows.configs import load_experiment
from slidemap.workflows.evaluate import evaluate_checkpoint

RESULTS = Path(__file__).resolve().parent / "results" / "real_rgbd.json"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd-landslides"
DIRECTIONS = (("A", "B"), ("B", "A"))
COLUMNS = ("f1", "iou", "mcc", "precision", "recall", "threshold")


def machine() -> dict[str, Any]:
    """Where the numbers were measured: CPU, cores, torch threads and the current load."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run_direction(config_name: str, data: Path, source: str, target: str, work: Path,
                  overrides: list[str]) -> dict[str, Any]:
    """Train ``config_name`` on area ``source``, score ``last.ckpt`` on area ``target``."""
    train_dir, target_dir = data / f"area_{source}", data / f"area_{target}"
    config = load_experiment(config_name, [
        f"data.train_path={train_dir}", f"data.val_path={target_dir}",
        "trainer.limit_val_batches=1", "trainer.progress=false", *overrides,
    ])
    run_dir = work / f"{config.name}_{source}_to_{target}"
    load_before = os.getloadavg()[0]
    result = train(config, run_dir, overwrite=True)
    evaluation = evaluate_checkpoint(result.last_checkpoint, target_dir, split=None)
    oracle_threshold = evaluation.curves.best_f1_threshold()
    oracle = compute_metrics(evaluation.curves, oracle_threshold)
    return {
        "model": config.model.name, "options": config.model.options, "config": config_name,
        "train": source, "test": target, "epochs": config.trainer.max_epochs,
        "train_seconds": round(result.seconds, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **{key: float(evaluation.metrics[key]) for key in COLUMNS},
        "oracle_f1": float(oracle["f1"]), "oracle_threshold": float(oracle_threshold),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table, one row per model and direction."""
    lines = ["| model | train → test | F1 | IoU | MCC | precision | recall | threshold "
             "| oracle F1 (thr.) | train time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['train']} → {r['test']} | {r['f1']:.3f} | {r['iou']:.3f} "
            f"| {r['mcc']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['threshold']:.2f} "
            f"| {r['oracle_f1']:.3f} ({r['oracle_threshold']:.2f}) "
            f"| {r['train_seconds'] / 60:.1f} min |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding area_A/ and area_B/")
    parser.add_argument("--models", default="unet,unet_cbam",
                        help="configs/rgbd/<name>.yaml to run, comma-separated")
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs")
    parser.add_argument("--width", type=int, default=None, help="override model base_channels")
    parser.add_argument("--work", type=Path, default=Path("runs/real_rgbd"), help="run folders")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if not all((args.data / f"area_{a}" / "img").is_dir() for a in "AB"):
        print(f"real_rgbd: {args.data} (area_A/, area_B/) is not present; nothing to benchmark. "
              "It is read from ../shared/data/rgbd-landslides beside the repository, or --data.")
        return 0
    overrides = [] if args.epochs is None else [f"trainer.max_epochs={args.epochs}"]
    if args.width is not None:
        overrides.append(f"model.options.base_channels={args.width}")
    started, machine_start = time.perf_counter(), machine()
    rows = []
    for name in args.models.split(","):
        for source, target in DIRECTIONS:
            rows.append(run_direction(f"rgbd/{name.strip()}.yaml", args.data, source, target,
                                      args.work, overrides))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    table = format_table(rows)
    print(table)
    results = {"rows": rows, "table": table, "seconds": round(time.perf_counter() - started, 1),
               "machine_start": machine_start, "machine_end": machine()}
    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} ({results['seconds'] / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
