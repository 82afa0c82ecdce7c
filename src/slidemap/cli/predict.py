"""``slidemap predict --checkpoint CKPT INPUT... --out DIR``: map scenes or patches.

INPUT is one or more GeoTIFF scenes (``probability.tif``, ``mask.tif``, ``landslides.gpkg``,
``landslides.geojson``, ``summary.json`` in DIR, or in ``DIR/<scene name>/`` when several),
or ``.h5`` patches / folders of patches (``mask_<id>.h5`` and ``prob_<id>.h5`` in DIR).
See ``docs/mapping.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from slidemap.errors import ConfigError, InputError

if TYPE_CHECKING:
    from slidemap.inference.engine import EngineSpec
    from slidemap.inference.postprocess import PostprocessConfig

HELP = "map landslides in GeoTIFF scenes (with a DEM) or Landslide4Sense .h5 patches"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from slidemap.inference.postprocess import PostprocessConfig
    from slidemap.inference.sliding import DEFAULT_OVERLAP_PX, DEFAULT_WINDOW_PX

    defaults = PostprocessConfig()
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT",
                        help="checkpoint from 'slidemap train' (or an exported .onnx with --engine onnx)")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="GeoTIFF scene(s), or .h5 patch files / folders of patches")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--dem", type=Path, default=None, metavar="DEM.tif",
                        help="elevation in metres, any CRS/resolution; warped onto each scene's grid")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="probability threshold (default: the checkpoint's)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_PX, metavar="PX",
                        help=f"sliding window side in pixels (default: {DEFAULT_WINDOW_PX})")
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP_PX, metavar="PX",
                        help=f"overlap of neighbouring windows in pixels (default: {DEFAULT_OVERLAP_PX})")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="run windows on a local Dask cluster of N worker processes")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run windows on an existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--scheduler-timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for --scheduler before giving up (default: 10)")
    parser.add_argument("--engine", choices=("torch", "onnx"), default="onnx",
                        help="inference runtime (default: onnx, a checkpoint is exported in memory "
                             "first; 1.3-1.8x the speed of torch on a 512 px window on a CPU, the same "
                             "probabilities within 1e-6; torch can be faster on small patches; "
                             "see docs/speed.md)")
    parser.add_argument("--bands", default=None, metavar="MAPPING",
                        help="raster band numbers by band name, e.g. B2=2,B3=3,B4=4,B8=8 "
                             "(default: match band descriptions)")
    parser.add_argument("--min-area", type=float, default=defaults.min_area_m2, metavar="M2",
                        help=f"drop landslides smaller than this, m² (default: {defaults.min_area_m2:g})")
    parser.add_argument("--max-hole-area", type=float, default=defaults.max_hole_area_m2, metavar="M2",
                        help=f"fill holes smaller than this, m² (default: {defaults.max_hole_area_m2:g})")
    parser.add_argument("--opening-radius", type=int, default=defaults.opening_radius_px, metavar="PX",
                        help=f"disk radius of the opening (default: {defaults.opening_radius_px})")
    parser.add_argument("--closing-radius", type=int, default=defaults.closing_radius_px, metavar="PX",
                        help=f"disk radius of the closing (default: {defaults.closing_radius_px})")
    parser.add_argument("--no-postprocess", action="store_true",
                        help="threshold only: no morphology, area or hole filters")
    parser.add_argument("--split", default=None, choices=("train", "valid", "test"),
                        help="split to predict when an INPUT folder is a Landslide4Sense root")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run in --out (never an input, "
                             "never a file slidemap did not write)")
    parser.add_argument("--verbose", action="store_true", help="show debug messages")


def _postprocess(args: argparse.Namespace) -> PostprocessConfig:
    from slidemap.inference.postprocess import PostprocessConfig

    if args.no_postprocess:
        return PostprocessConfig(0, 0, 0.0, 0.0)
    return PostprocessConfig(args.opening_radius, args.closing_radius, args.min_area, args.max_hole_area)


def run(args: argparse.Namespace) -> int:
    from slidemap.cli._runtime import setup_logging
    from slidemap.inference.engine import EngineSpec, load_engine
    from slidemap.inference.patches import is_patch_input, output_names, patch_refs, predict_patches
    from slidemap.io.outputs import OutputFolder

    setup_logging(args.verbose)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {args.threshold}")
    missing = [p for p in args.inputs if not p.exists()]
    if missing:
        raise InputError("input does not exist", missing[0])
    kinds = {is_patch_input(p) for p in args.inputs}
    if len(kinds) > 1:
        raise InputError("mixes GeoTIFF scenes and .h5 patches; predict them in separate runs", args.inputs[0])
    spec = EngineSpec(args.checkpoint, args.engine)
    if kinds == {True}:
        refs = patch_refs(args.inputs, args.split)
        inputs = [args.checkpoint, *(p for ref in refs for p in (ref.image, ref.mask))]
        with OutputFolder(args.out, "predict", inputs, args.overwrite) as folder:
            folder.claim(output_names(refs))  # refused before the model is even loaded
            summary = predict_patches(load_engine(spec), refs, args.out, threshold=args.threshold,
                                      postprocess=None if args.no_postprocess else _postprocess(args),
                                      overwrite=args.overwrite)
        print(f"{summary['count']} patches -> {args.out} ({summary['seconds']:.1f} s)")
        return 0
    _predict_scenes(args, spec)
    return 0


def _predict_scenes(args: argparse.Namespace, spec: EngineSpec) -> None:
    """Check every scene (image, DEM, bands) before mapping any; then map each one as a set."""
    from slidemap.inference.engine import load_engine
    from slidemap.inference.mapping import (
        OUTPUT_NAMES,
        MappingOptions,
        predict_scene,
        validate_scene,
    )
    from slidemap.inference.scene import SceneSpec
    from slidemap.io.geotiff import parse_band_mapping
    from slidemap.io.outputs import OutputFolder

    mapping = tuple(parse_band_mapping(args.bands).items()) if args.bands else ()
    options = MappingOptions(
        window=args.window, overlap=args.overlap, threshold=args.threshold,
        postprocess=_postprocess(args), workers=args.workers, scheduler=args.scheduler,
        scheduler_timeout_s=args.scheduler_timeout,
    )
    names = [p.stem for p in args.inputs]
    if len(set(names)) != len(names):
        raise InputError("two scenes share a file name; outputs would clash (map them separately)")
    scenes = {image: SceneSpec(image, args.dem, mapping) for image in args.inputs}
    outs = {image: args.out if len(args.inputs) == 1 else args.out / image.stem for image in scenes}
    inputs = [args.checkpoint, args.dem, *args.inputs]
    with OutputFolder(args.out, "predict", inputs, args.overwrite) as folder:
        folder.claim(out / name for out in outs.values() for name in OUTPUT_NAMES.values())
        engine = load_engine(spec)
        for scene in scenes.values():
            validate_scene(engine, scene, options)
        for image, scene in scenes.items():
            summary = predict_scene(spec, scene, outs[image], options, checkpoint=args.checkpoint)
            print(f"{image}: {summary['count']} landslides, {summary['total_area_m2']:.0f} m² "
                  f"-> {outs[image]}")
            print(json.dumps({k: summary[k] for k in ("threshold", "seconds", "megapixels_per_second")}))
