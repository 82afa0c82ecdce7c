"""``slidemap demo [--out runs/demo]``: synthetic data → train → compare → report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from slidemap.cli._runtime import setup_logging

HELP = "the whole pipeline on a synthetic dataset: train UNet, UNet-CBAM, SegNet, DP-FCN; report"

DEMO_CONFIG = "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                        help="output folder (default: runs/demo)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a value of the demo config, e.g. base.trainer.max_epochs=3")
    parser.add_argument("--verbose", action="store_true", help="also show Lightning's messages")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    import logging

    from slidemap.config import load_compare_config
    from slidemap.data.synthetic import generate_dataset
    from slidemap.evaluation.compare import run_comparison

    started = time.perf_counter()
    config = load_compare_config(DEMO_CONFIG, args.overrides)
    data = args.out / "data"
    if not (data / "synthetic.json").is_file():  # reuse the dataset of an earlier demo
        logging.getLogger("slidemap").info("synthesising %d patches into %s",
                                           config.synthetic_patches, data)
        generate_dataset(data, n_patches=config.synthetic_patches, seed=config.base.trainer.seed)
    config.base.data.root = str(data)
    result = run_comparison(config, args.out)
    print((args.out / "table1.md").read_text(encoding="utf-8"))
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {result.report_html}")
    print(f"        {result.report_md}")
    return 0
