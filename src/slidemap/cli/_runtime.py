"""Shared options and steps of the commands (train, evaluate, compare, demo, predict).

Not a subcommand itself (the dispatcher only imports the names in ``COMMANDS``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slidemap.inference.postprocess import PostprocessConfig

#: libraries whose INFO chatter (tips, "GPU available") is hidden unless --verbose.
_QUIET_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")


def setup_logging(verbose: bool = False) -> None:
    """slidemap's progress lines on stderr; Lightning's log only from WARNING (all with
    ``--verbose``). Python warnings are not filtered.

    Lightning sets its own logger levels when imported, so it is imported first (every
    command that calls this trains or evaluates with it anyway).
    """
    import lightning.pytorch  # noqa: F401

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("slidemap")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # No warning is silenced here: the few known, harmless ones are named and silenced
    # where they arise (slidemap.training.run.KNOWN_WARNINGS, around the fit only).


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    """``--config``, ``--data``, ``--set`` and ``--verbose``, as train and compare take them."""
    parser.add_argument("--config", required=True, metavar="CFG.yaml", help=config_help)
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="dataset root (TrainData/ValidData/TestData); replaces data.root")
    add_override_arguments(parser)


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """``--set`` and ``--verbose`` (for commands whose data come otherwise, e.g. crossval)."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config value, e.g. trainer.max_epochs=5 (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="also show Lightning's messages")


def add_engine_argument(parser: argparse.ArgumentParser) -> None:
    """``--engine auto|torch|onnx``: the one engine choice of predict, evaluate, compare, demo."""
    from slidemap.inference.predictor import ENGINE_CHOICES

    parser.add_argument(
        "--engine", choices=ENGINE_CHOICES, default="auto",
        help="inference runtime (default: auto = the one engine of the precision, else torch for "
             ".h5 patches and, for scenes, the faster of the two timed on one window; onnx exports "
             "a checkpoint in memory first; both give the same probabilities within 1e-5); recorded "
             "in metrics.json and summary.json")


def add_precision_arguments(parser: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--calibration``: the numeric precision of predict, evaluate, compare."""
    from slidemap.inference.engine import PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="numeric precision of inference (default: fp32); bf16 runs on the torch "
                             "engine (about 2x faster on CPUs with AVX512-BF16 or AMX), int8 on onnx; "
                             "their accuracy against fp32: docs/speed.md; recorded as "
                             "inference_precision")
    parser.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                        help="training patches that calibrate --precision int8 when the checkpoint "
                             "is not an int8 export (slidemap export --precision int8)")


#: What a checkpoint file's name ends with (tells the checkpoints of ``predict`` from its inputs).
CHECKPOINT_SUFFIXES = (".ckpt", ".onnx")


def add_checkpoint_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--checkpoint CKPT [CKPT...]`` (several: an ensemble) and ``--tta``, as predict and
    evaluate take them; ``what`` ends the ``--checkpoint`` help."""
    parser.add_argument(
        "--checkpoint", nargs="+", required=True, metavar="CKPT",
        help=f"checkpoint(s) {what}; several (same band set and input pipeline, checked) are an "
             "ensemble: their probabilities are averaged, each member normalising with its own "
             "statistics, at the mean of their thresholds unless --threshold")
    parser.add_argument(
        "--tta", action="store_true",
        help="test-time augmentation: average the probabilities over the 8 flips and 90° "
             "rotations of each patch or window (8x the model time, same memory); with it or an "
             "ensemble, scenes also get uncertainty.tif and a mean_uncertainty per landslide. "
             "Off by default (measured effect: docs/real-data.md)")


def split_checkpoints(tokens: list[str]) -> tuple[list[Path], list[str]]:
    """``--checkpoint`` values of ``predict`` -> ``(checkpoints, inputs)``: the first value
    and every following one named ``*.ckpt``/``*.onnx`` are checkpoints; from the first other
    name on, they are inputs, kept as given (a URL stays a URL), so
    ``--checkpoint a.ckpt b.ckpt scene.tif`` reads as SPEC writes it."""
    count = 1
    while count < len(tokens) and Path(tokens[count]).suffix.lower() in CHECKPOINT_SUFFIXES:
        count += 1
    return [Path(t) for t in tokens[:count]], tokens[count:]


def add_postprocess_arguments(parser: argparse.ArgumentParser, *, scenes: bool) -> None:
    """Mask cleaning options. Patches (the submission format) are thresholded only unless
    ``--postprocess``; scenes (when the command maps them) are cleaned unless ``--no-postprocess``."""
    from slidemap.inference.postprocess import PostprocessConfig

    defaults = PostprocessConfig()
    parser.add_argument("--postprocess", action="store_true",
                        help="clean .h5 patch masks too (morphology, minimum area, holes); "
                             "off by default: the submission format is the thresholded network output")
    if scenes:
        parser.add_argument("--no-postprocess", action="store_true",
                            help="scenes: threshold only, no morphology, area or hole filters")
    parser.add_argument("--min-area", type=float, default=defaults.min_area_m2, metavar="M2",
                        help=f"drop landslides smaller than this, m² (default: {defaults.min_area_m2:g})")
    parser.add_argument("--max-hole-area", type=float, default=defaults.max_hole_area_m2, metavar="M2",
                        help=f"fill holes smaller than this, m² (default: {defaults.max_hole_area_m2:g})")
    parser.add_argument("--opening-radius", type=int, default=defaults.opening_radius_px, metavar="PX",
                        help=f"disk radius of the opening (default: {defaults.opening_radius_px})")
    parser.add_argument("--closing-radius", type=int, default=defaults.closing_radius_px, metavar="PX",
                        help=f"disk radius of the closing (default: {defaults.closing_radius_px})")


def postprocess_config(args: argparse.Namespace, *, patches: bool) -> PostprocessConfig | None:
    """The post-processing the options of :func:`add_postprocess_arguments` ask for
    (``None`` = threshold only) for patches or for scenes."""
    from slidemap.inference.postprocess import PostprocessConfig

    wanted = args.postprocess if patches else not getattr(args, "no_postprocess", False)
    if not wanted:
        return None
    return PostprocessConfig(args.opening_radius, args.closing_radius, args.min_area, args.max_hole_area)
