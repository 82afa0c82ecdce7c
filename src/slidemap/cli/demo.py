"""``slidemap demo [--out runs/demo]``: synthetic data → train → compare → report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from slidemap.cli._runtime import add_engine_argument, setup_logging

HELP = ("the whole pipeline on synthetic data: train UNet, UNet-CBAM, SegNet, DP-FCN; "
        "Table 1, figures, a mapped scene, report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                        help="output folder (default: runs/demo)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a value of the demo config, e.g. base.trainer.max_epochs=3")
    parser.add_argument("--scene-size", type=int, default=1024, metavar="PX",
                        help="side of the synthetic scene mapped at the end (0 skips it; default 1024)")
    add_engine_argument(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier demo in --out (its data is reused)")
    parser.add_argument("--verbose", action="store_true", help="also show Lightning's messages")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from slidemap.workflows.demo import run_demo

    started = time.perf_counter()
    result = run_demo(args.out, args.overrides, args.scene_size, args.engine, overwrite=args.overwrite)
    print((args.out / "table1.md").read_text(encoding="utf-8"))
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {result.report_html}")
    print(f"        {result.report_md}")
    return 0
