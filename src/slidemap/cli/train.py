"""``slidemap train --config CFG.yaml [--data DIR] [--out RUN] [--resume] [--set k=v ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.cli._runtime import add_config_arguments, setup_logging

HELP = "train one model from a config file into a run folder (checkpoints, metrics.csv, curves)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, "experiment config (e.g. configs/paper/unet_cbam.yaml)")
    parser.add_argument("--out", type=Path, default=None, metavar="RUN",
                        help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last.ckpt (its model, band set "
                             "and pipeline; a config that changes them is refused)")
    parser.add_argument("--overwrite", action="store_true",
                        help="train afresh into --out, replacing the files of an earlier run there")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from slidemap.config import resolve_config_path
    from slidemap.errors import ConfigError, Interrupted
    from slidemap.io.outputs import OutputFolder
    from slidemap.workflows.configs import load_experiment
    from slidemap.workflows.train import train_and_report

    config = load_experiment(args.config, args.overrides)
    if args.data is not None:
        config.data.root = str(args.data)
    if config.data.root is None and config.data.train_path is None:
        raise ConfigError(
            "no training data: give --data DIR or set data.root / data.train_path", args.config
        )
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues a run and --overwrite starts one afresh; give one")
    out = args.out if args.out is not None else Path("runs") / config.name
    config_file = resolve_config_path(args.config)
    with OutputFolder(out, "train", [config_file], overwrite=args.resume or args.overwrite):
        try:
            result = train_and_report(config, out, resume=args.resume, overwrite=args.overwrite,
                                      source=config_file)
        except Interrupted as exc:  # say how to go on from last.ckpt
            if not (out / "last.ckpt").is_file():
                raise
            again = f"slidemap train --config {args.config} --out {out} --resume"
            raise Interrupted(exc.signum, f"{exc.note}; continue with: {again}") from None
    last = result.history[-1] if result.history else {}
    print(f"run folder: {result.out_dir}")
    print(f"best checkpoint: {result.best_checkpoint} (epoch {result.best_epoch + 1}, "
          f"threshold {result.threshold:.3f}, val F1 {last.get('val_best_f1', float('nan')):.4f} "
          "at the last epoch)")
    return 0
