"""``slidemap compare --config CFG.yaml --out DIR``: Table 1, figures and report."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.cli._runtime import (
    add_config_arguments,
    add_engine_argument,
    add_precision_arguments,
    setup_logging,
)

HELP = "train and evaluate several models on the same data: Table 1, figures, report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "comparison config (e.g. configs/paper/compare.yaml)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs (and runs) of an earlier comparison in --out")
    add_engine_argument(parser)
    add_precision_arguments(parser)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from slidemap.config import resolve_config_path
    from slidemap.io.outputs import OutputFolder
    from slidemap.workflows.compare import run_comparison
    from slidemap.workflows.configs import load_comparison

    config = load_comparison(args.config, args.overrides)
    if args.data is not None:
        config.base.data.root = str(args.data)
    with OutputFolder(args.out, "compare", [resolve_config_path(args.config)], args.overwrite):
        result = run_comparison(config, args.out, engine=args.engine, precision=args.precision,
                                calibration=args.calibration, overwrite=args.overwrite)
    print((args.out / "table1.md").read_text(encoding="utf-8"))
    print(f"report: {result.report_html} ({result.seconds:.0f} s)")
    return 0
