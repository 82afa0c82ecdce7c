"""``slidemap evaluate --checkpoint CKPT --data DIR [--split NAME] --out DIR [--threshold T]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.cli._runtime import add_engine_argument, add_postprocess_arguments, setup_logging

HELP = "score a checkpoint on a split: metrics.json and ROC, PR, confusion, prediction figures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT",
                        help="best.ckpt or last.ckpt of a run")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="dataset root or one split folder (img/ + mask/)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"),
                        help="split of a dataset root (default: test)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="probability threshold (default: the checkpoint's, best F1 on validation)")
    parser.add_argument("--panels", type=int, default=6, metavar="N",
                        help="patches in the prediction panels (default: 6)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B",
                        help="patches per forward pass (default: 8)")
    add_engine_argument(parser)
    add_postprocess_arguments(parser, scenes=False)
    parser.add_argument("--verbose", action="store_true", help="also show library messages")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from slidemap.cli._runtime import postprocess_config
    from slidemap.config import check_threshold
    from slidemap.data.l4s import split_refs
    from slidemap.errors import ConfigError
    from slidemap.inference.predictor import load_predictor
    from slidemap.workflows.evaluate import evaluate_checkpoint, write_metrics
    from slidemap.workflows.figures import select_panel_ids, write_evaluation_figures

    if args.batch_size < 1 or args.panels < 0:
        raise ConfigError("--batch-size must be >= 1 and --panels >= 0")
    threshold = None if args.threshold is None else check_threshold(args.threshold, "--threshold")
    predictor = load_predictor(args.checkpoint, args.engine, "patches", device="auto")
    panel_ids = select_panel_ids(split_refs(args.data, args.split), args.panels)
    evaluation = evaluate_checkpoint(predictor, args.data, args.split, threshold, args.batch_size,
                                     keep_ids=panel_ids, postprocess=postprocess_config(args, patches=True))
    metrics_path = write_metrics(evaluation, args.out / "metrics.json")
    write_evaluation_figures({predictor.model_name: evaluation}, args.out, panel_ids)
    m = evaluation.metrics
    print(f"{metrics_path}: F1 {m['f1']:.4f}  IoU {m['iou']:.4f}  precision {m['precision']:.4f}  "
          f"recall {m['recall']:.4f}  MCC {m['mcc']:.4f}  ROC-AUC {m['roc_auc']:.4f}  "
          f"threshold {m['threshold']:.3f}  ({evaluation.record['engine']} engine)")
    return 0
