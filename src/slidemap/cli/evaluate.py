"""``slidemap evaluate --checkpoint CKPT [CKPT...] --data DIR [--split NAME] --out DIR [--threshold T] [--tta]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.cli._runtime import (
    add_checkpoint_arguments,
    add_engine_argument,
    add_postprocess_arguments,
    add_precision_arguments,
    setup_logging,
)

#: files ``evaluate`` writes into --out.
EVALUATION_OUTPUTS = ("metrics.json", "roc.png", "pr.png", "confusion.png", "panels.png",
                      "calibration.png")

HELP = ("score a checkpoint (or an ensemble) on a split: metrics.json with calibration, and ROC, PR, "
        "confusion, reliability and prediction figures")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(parser, "(best.ckpt or last.ckpt of a run)")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="dataset root or one split folder (img/ + mask/)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"),
                        help="split of a dataset root (default: test)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="probability threshold (default: the checkpoint's, best F1 on validation; "
                             "an ensemble's: the mean of its members')")
    parser.add_argument("--panels", type=int, default=6, metavar="N",
                        help="patches in the prediction panels (default: 6)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B",
                        help="patches per forward pass (default: 8)")
    add_engine_argument(parser)
    add_precision_arguments(parser)
    add_postprocess_arguments(parser, scenes=False)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier evaluation in --out")
    parser.add_argument("--verbose", action="store_true", help="also show library messages")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from slidemap.cli._runtime import postprocess_config
    from slidemap.config import check_threshold
    from slidemap.data.l4s import split_refs
    from slidemap.errors import ConfigError
    from slidemap.inference.predictor import load_predictor
    from slidemap.io.outputs import OutputFolder
    from slidemap.workflows.evaluate import evaluate_checkpoint, write_metrics
    from slidemap.workflows.figures import select_panel_ids, write_evaluation_figures

    if args.batch_size < 1 or args.panels < 0:
        raise ConfigError("--batch-size must be >= 1 and --panels >= 0")
    threshold = None if args.threshold is None else check_threshold(args.threshold, "--threshold")
    refs = split_refs(args.data, args.split)
    inputs = [*args.checkpoint, *(p for ref in refs for p in (ref.image, ref.mask))]
    with OutputFolder(args.out, "evaluate", inputs, args.overwrite) as folder:
        folder.claim(EVALUATION_OUTPUTS)  # refused before the model is even loaded
        predictor = load_predictor([Path(c) for c in args.checkpoint], args.engine, "patches",
                                   device="auto", tta=args.tta,
                                   precision=args.precision, calibration=args.calibration)
        panel_ids = select_panel_ids(refs, args.panels)
        evaluation = evaluate_checkpoint(predictor, args.data, args.split, threshold, args.batch_size,
                                         keep_ids=panel_ids,
                                         postprocess=postprocess_config(args, patches=True))
        with folder.output_set():  # metrics.json and its figures appear together
            metrics_path = write_metrics(evaluation, args.out / "metrics.json")
            write_evaluation_figures({predictor.label: evaluation}, args.out, panel_ids)
    m = evaluation.metrics
    print(f"{metrics_path}: F1 {m['f1']:.4f}  IoU {m['iou']:.4f}  precision {m['precision']:.4f}  "
          f"recall {m['recall']:.4f}  MCC {m['mcc']:.4f}  ROC-AUC {m['roc_auc']:.4f}  "
          f"ECE {m['ece']:.4f}  threshold {m['threshold']:.3f}  "
          f"({evaluation.record['engine']} engine, {predictor.label})")
    return 0
