"""The paper's question on real RGB + DSM landslides: UNet vs UNet-CBAM (and where CBAM sits,
and the auxiliary features on or off), by leave-one-area-out over areas A and B.

    python benchmarks/real_rgbd.py [--variants unet,unet_cbam,...] [--seeds 3] [--jobs 1]
                                   [--data DIR] [--epochs N]

Every variant is a shipped config (``configs/rgbd/unet.yaml`` or ``unet_cbam.yaml``, the
chosen recipe) with at most a model or feature change (:data:`VARIANTS`). Each is
cross-validated by :func:`slidemap.workflows.crossval.run_crossval`: trained on one area
(pooled, as the shipped configs pool every area given), scored on every pixel of the other,
both ways, for every seed, into ``benchmarks/results/real_rgbd/<variant>/`` (finished runs
are reused). The held-out area chooses nothing: the last epoch at the fixed threshold 0.5.

Prints one Markdown table (per direction and the mean over areas: mean ± std over seeds,
and a 95 % block-bootstrap interval of the seed-mean F1), then the paired differences of
every variant minus the first (UNet; the same resampled blocks for both), and writes
``benchmarks/results/real_rgbd.json``. Without ``../shared/data`` it says so and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slidemap.evaluation.bootstrap import Interval, describe_differences
from slidemap.io.atomic import write_text_atomic
from slidemap.workflows.configs import load_experiment
from slidemap.workflows.crossval import (
    ALL_AREAS,
    CrossvalResult,
    bootstrap_crossvals,
    format_cell,
    run_crossval,
)

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd-landslides"
CBAM_OFF = {"cbam_encoder": False, "cbam_decoder": False, "cbam_skip": False}

#: name -> (label, config, overrides)
VARIANTS: dict[str, tuple[str, str, list[str]]] = {
    "unet": ("UNet", "rgbd/unet.yaml", []),
    "unet_cbam": ("UNet-CBAM (all)", "rgbd/unet_cbam.yaml", []),
    "cbam_encoder": ("CBAM encoder only", "rgbd/unet_cbam.yaml",
                     ["model.options.cbam_decoder=false", "model.options.cbam_skip=false"]),
    "cbam_decoder": ("CBAM decoder only", "rgbd/unet_cbam.yaml",
                     ["model.options.cbam_encoder=false", "model.options.cbam_skip=false"]),
    "cbam_skip": ("CBAM skips only", "rgbd/unet_cbam.yaml",
                  ["model.options.cbam_encoder=false", "model.options.cbam_decoder=false"]),
    "unet_nofeat": ("UNet, bands only", "rgbd/unet.yaml", ["data.features=[]"]),
    "unet_cbam_nofeat": ("UNet-CBAM, bands only", "rgbd/unet_cbam.yaml", ["data.features=[]"]),
}


def machine() -> dict[str, Any]:
    """Where the numbers were measured: CPU, cores, torch threads and the current load."""
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def format_table(labels: dict[str, str], results: dict[str, CrossvalResult]) -> str:
    """One row per variant: F1 per held-out area and over areas (mean ± std, CI), IoU, MCC."""
    first = next(iter(results.values()))
    areas = first.areas
    header = ["variant", *(f"F1, {a} held out" for a in areas), "F1, mean over areas",
              "F1 95 % CI", "IoU (mean)", "MCC (mean)", "train min / run"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, result in results.items():
        s = result.summary
        overall = s[ALL_AREAS]
        lines.append("| " + " | ".join([
            labels[name], *(format_cell(s[a]["f1"]) for a in areas), format_cell(overall["f1"]),
            f"{overall['f1_interval']['low']:.3f}–{overall['f1_interval']['high']:.3f}",
            format_cell(overall["iou"]), format_cell(overall["mcc"]),
            f"{overall['train_minutes']['mean']:.1f}",
        ]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding area_A/ and area_B/")
    parser.add_argument("--variants", default="unet,unet_cbam",
                        help=f"comma-separated, of: {', '.join(VARIANTS)}; 'all' for every one")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override applied to every variant (repeatable)")
    parser.add_argument("--work", type=Path, default=RESULTS / "real_rgbd", help="crossval folders")
    parser.add_argument("--out", type=Path, default=RESULTS / "real_rgbd.json", help="JSON results")
    args = parser.parse_args(argv)
    areas = [args.data / "area_A", args.data / "area_B"]
    if not all((a / "img").is_dir() for a in areas):
        print(f"real_rgbd: {args.data} (area_A/, area_B/) is not present; nothing to benchmark. "
              "It is read from ../shared/data/rgbd-landslides beside the repository, or --data.")
        return 0
    names = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(",")]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    started, machine_start = time.perf_counter(), machine()
    results: dict[str, CrossvalResult] = {}
    labels = {n: VARIANTS[n][0] for n in names}
    for name in names:
        _, config_name, overrides = VARIANTS[name]
        overrides = [*overrides, *args.overrides]
        if args.epochs is not None:
            overrides = [*overrides, f"trainer.max_epochs={args.epochs}"]
        config = load_experiment(config_name, [*overrides, "trainer.progress=false"])
        suffix = "" if args.epochs is None else f"-e{args.epochs}"
        results[name] = run_crossval(config, areas, list(range(args.seeds)),
                                     args.work / f"{name}{suffix}", jobs=args.jobs)
        print(format_table(labels, {name: results[name]}).splitlines()[-1], flush=True)
    table = format_table(labels, results)
    paired = bootstrap_crossvals({labels[n]: r for n, r in results.items()}) if len(results) > 1 else None
    sentences = []
    if paired is not None:  # every variant against the first (UNet by default)
        reference = labels[names[0]]
        paired = dataclasses.replace(paired, differences={
            (b, a): Interval(-d.estimate, -d.high, -d.low)
            for (a, b), d in paired.differences.items() if a == reference})
        sentences = describe_differences(paired)
    print(table)
    for sentence in sentences:
        print(f"- {sentence}")
    payload = {
        "table": table, "differences": sentences,
        "bootstrap": None if paired is None else paired.to_dict(),
        "variants": {n: {"label": labels[n], "config": VARIANTS[n][1], "overrides": VARIANTS[n][2],
                         "summary": r.summary,
                         "runs": [{k: v for k, v in run.to_dict().items() if k != "patch_counts"}
                                  for run in r.runs]} for n, r in results.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "machine_start": machine_start, "machine_end": machine(),
    }
    write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out} ({payload['seconds'] / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
