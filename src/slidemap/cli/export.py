"""``slidemap export --checkpoint CKPT --out MODEL.onnx``: ONNX for CPU inference."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.errors import ConfigError

HELP = ("export a checkpoint to ONNX, float32 or int8 (dynamic batch/height/width; pipeline, "
        "statistics, threshold inside)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT",
                        help="checkpoint from 'slidemap train'")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL.onnx", help="ONNX file to write")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="fp32 (default) or int8: static quantization calibrated on --calibration")
    parser.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                        help="training patches for int8 calibration (a Landslide4Sense root: its "
                             "training split; or one folder of patches)")
    parser.add_argument("--calibration-patches", type=int, default=256, metavar="N",
                        help="patches drawn (seeded) from DIR for calibration (default: 256)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an ONNX file an earlier export wrote")


def run(args: argparse.Namespace) -> int:
    from slidemap.inference.onnx_export import export_onnx
    from slidemap.io.outputs import OutputFolder

    if args.out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out must end in .onnx, got {args.out.name!r}", args.out)
    with OutputFolder(args.out.parent, "export", [args.checkpoint], args.overwrite) as folder:
        folder.claim([args.out])
        export_onnx(args.checkpoint, args.out, args.precision, args.calibration,
                    args.calibration_patches)
    print(args.out)
    return 0
