"""``slidemap synth``: a synthetic dataset in the official Landslide4Sense layout."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "write a synthetic Landslide4Sense dataset (TrainData/ValidData/TestData)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="root folder to create")
    parser.add_argument(
        "--patches", type=int, default=240, help="number of 128x128 patches (default 240)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from slidemap.data.synthetic import generate_dataset
    from slidemap.data.synthetic.patches import SUMMARY_FILE

    start = time.perf_counter()
    root = generate_dataset(args.out, n_patches=args.patches, seed=args.seed)
    summary = json.loads((root / SUMMARY_FILE).read_text())
    counts = ", ".join(f"{name} {s['patches']}" for name, s in summary["splits"].items())
    print(
        f"{root}: {args.patches} patches ({counts}), "
        f"{100 * summary['landslide_fraction']:.1f}% landslide pixels, "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0
