"""``slidemap export --checkpoint CKPT --out MODEL.onnx``: ONNX for CPU inference."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidemap.errors import ConfigError

HELP = "export a checkpoint to ONNX (dynamic batch/height/width; pipeline, statistics, threshold inside)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT",
                        help="checkpoint from 'slidemap train'")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL.onnx", help="ONNX file to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an ONNX file an earlier export wrote")


def run(args: argparse.Namespace) -> int:
    from slidemap.inference.onnx_export import export_onnx
    from slidemap.io.outputs import OutputFolder

    if args.out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out must end in .onnx, got {args.out.name!r}", args.out)
    with OutputFolder(args.out.parent, "export", [args.checkpoint], args.overwrite) as folder:
        folder.claim([args.out])
        export_onnx(args.checkpoint, args.out)
    print(args.out)
    return 0
