"""Leave-one-area-out screening of training recipes on the real RGB + DSM areas.

    python benchmarks/recipe_search.py VARIANT [VARIANT ...] [--seeds 1] [--jobs 1]
    python benchmarks/recipe_search.py --list

Each variant is a shipped rgbd config plus ``--set`` overrides (:data:`VARIANTS`); it is
cross-validated with :func:`slidemap.workflows.crossval.run_crossval` over area A and area B
(train on one, score every pixel of the other, both ways) into
``benchmarks/results/loao/<variant>/``, and its row (config, seeds, per-direction F1,
minutes) is merged into ``benchmarks/results/recipe_search.{json,md}``. Finished runs are
reused, so the script can be stopped and started again. The held-out area chooses nothing
(see :mod:`slidemap.workflows.crossval`). Without ``../shared/data`` it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from slidemap.io.atomic import write_text_atomic
from slidemap.workflows.configs import load_experiment
from slidemap.workflows.crossval import run_crossval

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd-landslides"

#: the screening recipe: the rgbd configs at 20 epochs (half the cost) with the previous
#: validation policy pinned (no validation: the last epoch at threshold 0.5), so every variant
#: changes one thing against it
SCREEN = ["trainer.max_epochs=20", "data.val_path=null", "trainer.progress=false",
          "data.holdout.fraction=0", "threshold=0.5", "trainer.monitor=val_f1"]
PHOTOMETRIC = ("data.augmentation.photometric={probability: 0.8, brightness: 0.2, contrast: 0.2, "
               "gamma: 0.2, saturation: 0.2, hue: 0.03, blur: 0.3, blur_sigma_px: 1.0, noise: 0.02}")
CROP = "data.augmentation.crop={probability: 0.5, min_scale: 0.6, max_aspect: 1.25}"
ELEVATION = "data.augmentation.elevation={probability: 0.8, relief: 0.3, offset_m: 0.0}"
EMA = "trainer.averaging={name: ema, decay: 0.99, start_epoch: 0}"
SWA = "trainer.averaging={name: swa, start_epoch: 10}"
LOVASZ = "loss=[{name: bce, weight: 1.0}, {name: lovasz, weight: 1.0}]"
HOLDOUT = ["data.holdout={fraction: 0.2, block_px: 512, seed: 0}", "threshold=best_f1",
           "trainer.monitor=val_best_f1"]

#: name -> (config, overrides)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "unet-base20": ("rgbd/unet.yaml", SCREEN),
    "unet-photo20": ("rgbd/unet.yaml", [*SCREEN, PHOTOMETRIC]),
    "unet-crop20": ("rgbd/unet.yaml", [*SCREEN, CROP]),
    "unet-elev20": ("rgbd/unet.yaml", [*SCREEN, ELEVATION]),
    "unet-ema20": ("rgbd/unet.yaml", [*SCREEN, EMA]),
    "unet-swa20": ("rgbd/unet.yaml", [*SCREEN, SWA]),
    "unet-lovasz20": ("rgbd/unet.yaml", [*SCREEN, LOVASZ]),
    "unet-holdout20": ("rgbd/unet.yaml", [*SCREEN, *HOLDOUT]),
    "unet-base40": ("rgbd/unet.yaml", [*SCREEN, "trainer.max_epochs=40"]),
    "cbam-base20": ("rgbd/unet_cbam.yaml", SCREEN),
}


def row(name: str, config: str, overrides: list[str], result: Any) -> dict[str, Any]:
    """One log entry: what ran and what it scored."""
    directions = {}
    for area in result.areas:
        trained_on = [a for a in result.areas if a != area]
        directions[f"{'+'.join(trained_on)} -> {area}"] = [
            round(result.run(area, s).metrics["f1"], 4) for s in result.seeds]
    overall = result.summary["mean over areas"]
    return {
        "variant": name, "config": config, "overrides": overrides, "seeds": result.seeds,
        "f1_by_direction": directions, "mean_f1": round(overall["f1"]["mean"], 4),
        "mean_f1_std": round(overall["f1"]["std"], 4),
        "minutes": round(sum(r.train_seconds for r in result.runs) / 60, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "finished": time.strftime("%Y-%m-%d %H:%M"),
    }


def write_log(entries: dict[str, dict[str, Any]]) -> None:
    lines = ["| variant | seeds | F1 by direction (per seed) | mean F1 ± std | train minutes (all runs) |",
             "|---|---|---|---|---|"]
    for e in entries.values():
        directions = "; ".join(f"{k}: {', '.join(f'{v:.3f}' for v in values)}"
                               for k, values in e["f1_by_direction"].items())
        lines.append(f"| {e['variant']} | {len(e['seeds'])} | {directions} | "
                     f"{e['mean_f1']:.3f} ± {e['mean_f1_std']:.3f} | {e['minutes']} |")
    write_text_atomic(RESULTS / "recipe_search.md", "\n".join(lines) + "\n")
    write_text_atomic(RESULTS / "recipe_search.json", json.dumps(entries, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help="variant names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding area_A/ and area_B/")
    args = parser.parse_args(argv)
    if args.list or not args.variants:
        for name, (config, overrides) in VARIANTS.items():
            print(f"{name}: {config} {' '.join(overrides)}")
        return 0
    areas = [args.data / "area_A", args.data / "area_B"]
    if not all((a / "img").is_dir() for a in areas):
        print(f"recipe_search: {args.data} (area_A/, area_B/) is not present; nothing to run.")
        return 0
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; see --list")
    log_path = RESULTS / "recipe_search.json"
    for name in args.variants:
        config_name, overrides = VARIANTS[name]
        config = load_experiment(config_name, overrides)
        result = run_crossval(config, areas, list(range(args.seeds)), RESULTS / "loao" / name,
                              jobs=args.jobs)
        key = f"{name} x{args.seeds}"
        # read again just before writing: several searches may run at once
        entries = json.loads(log_path.read_text()) if log_path.is_file() else {}
        entries[key] = row(name, config_name, overrides, result)
        write_log(entries)
        print(f"{key}: mean F1 {entries[key]['mean_f1']:.3f} {entries[key]['f1_by_direction']}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
