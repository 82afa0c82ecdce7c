"""What the training recipe costs per patch: data (with and without the augmentation) against
a training step, measured in one process, interleaved, as ratios.

    python benchmarks/recipe_cost.py [--configs rgbd/unet.yaml,rgbd/unet_cbam.yaml] [--repeats 5] [--set k=v]

For the shipped rgbd config (and UNet), times per patch: serving a cached patch without
augmentation, serving a patch with the config's augmentation (photometric/elevation jitter
recomputes the features), and one optimiser step of the model on a batch (forward,
backward, AdamW), all on real area A patches, alternating, the median of ``--repeats``.
The ratio (training step + augmented data) / (training step + cached data) scales a quiet
measurement of seconds per epoch without augmentation to one with it. Run it on a quiet
machine: under contention the two-thread training step slows far more than the one-thread
data path (measured here at load 15: 2.6 s per patch and step against 0.06 s of data), and
the ratio means nothing. Prints a table and writes ``benchmarks/results/recipe_cost.json``.
Without ``../shared/data`` it exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from slidemap.io.atomic import write_text_atomic
from slidemap.training.run import build_datamodule, build_pipeline
from slidemap.training.task import SegmentationTask
from slidemap.workflows.configs import load_experiment

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd-landslides"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="rgbd/unet.yaml,rgbd/unet_cbam.yaml")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--patches", type=int, default=32, help="patches per timed pass")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override applied to every config (repeatable)")
    args = parser.parse_args(argv)
    area = args.data / "area_A"
    if not (area / "img").is_dir():
        print(f"recipe_cost: {area} is not present; nothing to measure.")
        return 0
    rows = {}
    for name in args.configs.split(","):
        config = load_experiment(name, [*args.overrides, f"data.train_path={area}", "data.val_path=null"])
        pipeline = build_pipeline(config)
        module = build_datamodule(config, pipeline)
        module.setup("fit")
        augmented = module._dataset("train")
        plain_config = load_experiment(name, [*args.overrides, f"data.train_path={area}",
                                          "data.val_path=null", "data.augment=false"])
        plain_module = build_datamodule(plain_config, pipeline, stats=module.stats)
        plain_module.setup("fit")
        plain = plain_module._dataset("train")
        task = SegmentationTask(config, pipeline, module.stats, validates=False)
        optimizer = torch.optim.AdamW(task.model.parameters(), lr=1e-3)
        n = min(args.patches, len(augmented))
        for i in range(n):  # fill the caches
            plain[(i, 0)], augmented[(i, 0)]
        batch = torch.stack([plain[(i, 0)]["image"] for i in range(8)])
        target = torch.stack([plain[(i, 0)]["mask"] for i in range(8)])

        times: dict[str, list[float]] = {"cached": [], "augmented": [], "step": []}
        for repeat in range(args.repeats):
            started = time.perf_counter()
            for i in range(n):
                plain[(i, repeat + 1)]
            times["cached"].append((time.perf_counter() - started) / n)
            started = time.perf_counter()
            for i in range(n):
                augmented[(i, repeat + 1)]
            times["augmented"].append((time.perf_counter() - started) / n)
            started = time.perf_counter()
            for _ in range(max(1, n // 8)):
                optimizer.zero_grad()
                logits = task.model(batch.contiguous(memory_format=task.memory_format))
                task.loss_fn(logits, target).backward()
                optimizer.step()
            times["step"].append((time.perf_counter() - started) / (8 * max(1, n // 8)))
        median = {k: statistics.median(v) for k, v in times.items()}
        rows[name] = {**{f"{k}_ms_per_patch": round(1000 * v, 2) for k, v in median.items()},
                      "epoch_ratio": round((median["step"] + median["augmented"])
                                           / (median["step"] + median["cached"]), 3)}
    lines = ["| config | cached data ms/patch | augmented data ms/patch | train step ms/patch "
             "| epoch time ratio (augmented / not) |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['cached_ms_per_patch']} | {r['augmented_ms_per_patch']} | "
                     f"{r['step_ms_per_patch']} | {r['epoch_ratio']} |")
    print("\n".join(lines))
    payload = {"rows": rows, "torch_threads": torch.get_num_threads(),
               "load_average": [round(x, 2) for x in os.getloadavg()]}
    write_text_atomic(RESULTS / "recipe_cost.json", json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
