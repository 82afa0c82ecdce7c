"""``slidemap crossval --config CFG.yaml --areas DIR DIR... [--seeds N] --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.cli._runtime import add_override_arguments, setup_logging

HELP = ("leave-one-area-out validation: train on all areas but one, score the one left out, "
        "for every area and seed (table as Markdown and JSON)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CFG.yaml",
                        help="experiment config (e.g. configs/rgbd/unet_cbam.yaml); its data "
                             "paths are replaced fold by fold")
    parser.add_argument("--areas", required=True, nargs="+", type=Path, metavar="DIR",
                        help="two or more labelled areas, each a folder with img/ and mask/")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="training seeds 0..N-1 per held-out area (default 3)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder: crossval.md, crossval.json, runs/<area>/seed<k>/")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="runs trained at once, sharing the CPU threads (default 1)")
    add_override_arguments(parser)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from slidemap.errors import ConfigError
    from slidemap.workflows.configs import load_experiment
    from slidemap.workflows.crossval import run_crossval

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    config = load_experiment(args.config, [*args.overrides, "trainer.progress=false"])
    result = run_crossval(config, args.areas, list(range(args.seeds)), args.out, jobs=args.jobs)
    print((result.out_dir / "crossval.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {result.out_dir / 'crossval.md'} and crossval.json "
          f"({result.seconds / 60:.1f} min)")
    return 0
