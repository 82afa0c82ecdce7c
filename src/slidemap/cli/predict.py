"""``slidemap predict --checkpoint CKPT [CKPT...] INPUT... --out DIR [--tta]``: map scenes or patches.

INPUT is one or more scenes — a GeoTIFF/VRT, a Sentinel-2 ``.SAFE`` folder (or its
``MTD_MSIL*.xml`` or zip), a folder of per-band files or a STAC item (``.json`` or URL) —
(``probability.tif``, ``mask.tif``, ``landslides.gpkg``, ``landslides.geojson``,
``summary.json`` in DIR, or in ``DIR/<scene name>/`` when several), or ``.h5`` patches /
folders of patches (``mask_<id>.h5`` and ``prob_<id>.h5`` in DIR). Several checkpoints are an
ensemble; with one or ``--tta`` a scene also gets ``uncertainty.tif``. See ``docs/mapping.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slidemap.cli._runtime import (
    add_checkpoint_arguments,
    add_engine_argument,
    add_postprocess_arguments,
    add_precision_arguments,
    postprocess_config,
    split_checkpoints,
)
from slidemap.errors import ConfigError, InputError

HELP = ("map landslides in scenes (GeoTIFF, Sentinel-2 SAFE/zip, per-band folder, STAC item; with a DEM) "
        "or Landslide4Sense .h5 patches")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from slidemap.inference.sliding import DEFAULT_OVERLAP_PX, DEFAULT_WINDOW_PX

    add_checkpoint_arguments(parser, "from 'slidemap train' (or exported .onnx files with --engine "
                             "onnx); checkpoint names end in .ckpt or .onnx, INPUTs may follow them")
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="scene(s): GeoTIFF/VRT, Sentinel-2 .SAFE folder / MTD_MSIL*.xml / zip, folder of "
                             "per-band files, STAC item (.json or URL); or .h5 patch files / folders of patches")
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
    add_engine_argument(parser)
    add_precision_arguments(parser)
    parser.add_argument("--bands", default=None, metavar="MAPPING",
                        help="raster band numbers by band name, e.g. B2=2,B3=3,B4=4,B8=8 "
                             "(default: match band descriptions)")
    parser.add_argument("--cloud-mask", type=Path, default=None, metavar="FILE",
                        help="raster (any grid) whose non-zero pixels are not assessable (clouds, "
                             "shadows...); an L2A scene's SCL band is used anyway")
    parser.add_argument("--accept-radiometry", action="store_true",
                        help="map a scene whose values the radiometry check finds implausible "
                             "(the check's findings become warnings)")
    add_postprocess_arguments(parser, scenes=True)
    parser.add_argument("--split", default=None, choices=("train", "valid", "test"),
                        help="split to predict when an INPUT folder is a Landslide4Sense root")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier run in --out (never an input, "
                             "never a file slidemap did not write)")
    parser.add_argument("--verbose", action="store_true", help="show debug messages")


def run(args: argparse.Namespace) -> int:
    from slidemap.cli._runtime import setup_logging
    from slidemap.config import check_threshold
    from slidemap.inference.patches import is_patch_input, output_names, patch_refs, predict_patches
    from slidemap.inference.predictor import load_predictor
    from slidemap.io.outputs import OutputFolder

    setup_logging(args.verbose)
    args.checkpoint, extra = split_checkpoints(args.checkpoint)
    args.inputs = [*extra, *args.inputs]
    if not args.inputs:
        raise ConfigError("give at least one INPUT (a scene, .h5 patches or a folder of them) "
                          "after the checkpoints")
    if args.threshold is not None:
        check_threshold(args.threshold, "--threshold")
    from slidemap.io.scene_formats import as_input, scene_format

    args.inputs = [as_input(p) for p in args.inputs]
    missing = [p for p in args.inputs if isinstance(p, Path) and not p.exists()]
    if missing:
        raise InputError("input does not exist", missing[0])
    kinds = {scene_format(p) is None and is_patch_input(Path(p)) for p in args.inputs}
    if len(kinds) > 1:
        raise InputError("mixes scenes and .h5 patches; predict them in separate runs", args.inputs[0])
    if kinds == {True}:
        refs = patch_refs(args.inputs, args.split)
        inputs = [*args.checkpoint, *(p for ref in refs for p in (ref.image, ref.mask))]
        with OutputFolder(args.out, "predict", inputs, args.overwrite) as folder:
            folder.claim(output_names(refs))  # refused before the model is even loaded
            predictor = load_predictor(args.checkpoint, args.engine, "patches", tta=args.tta,
                                       precision=args.precision, calibration=args.calibration)
            summary = predict_patches(predictor, refs, args.out, threshold=args.threshold,
                                      postprocess=postprocess_config(args, patches=True),
                                      overwrite=args.overwrite)
        print(f"{summary['count']} patches -> {args.out} ({summary['seconds']:.1f} s, "
              f"{summary['engine']} engine, {predictor.label})")
        return 0
    _predict_scenes(args)
    return 0


def _predict_scenes(args: argparse.Namespace) -> None:
    """Check every scene (image, DEM, bands, memory) before mapping any; then map each one
    as a set of outputs (:mod:`slidemap.io.outputs`)."""
    from slidemap.inference.mapping import (
        OUTPUT_NAMES,
        UNCERTAINTY_NAME,
        MappingOptions,
        predict_scene,
        validate_scene,
    )
    from slidemap.inference.postprocess import PostprocessConfig
    from slidemap.inference.predictor import build_predictor, predictor_spec
    from slidemap.inference.scene import SceneSpec
    from slidemap.io.outputs import OutputFolder
    from slidemap.io.scene_source import parse_band_mapping

    # auto on scenes times the engines on one window of the first checkpoint
    spec = predictor_spec(args.checkpoint, args.engine, "scene", tta=args.tta,
                          precision=args.precision, calibration=args.calibration, window=args.window)
    mapping = tuple(parse_band_mapping(args.bands).items()) if args.bands else ()
    from slidemap.io.scene_source import scene_name

    threshold_only = PostprocessConfig(0, 0, 0.0, 0.0)
    options = MappingOptions(
        window=args.window, overlap=args.overlap, threshold=args.threshold,
        postprocess=postprocess_config(args, patches=False) or threshold_only,
        workers=args.workers, scheduler=args.scheduler,
        accept_radiometry=args.accept_radiometry, scheduler_timeout_s=args.scheduler_timeout,
    )
    names = [scene_name(p) for p in args.inputs]
    if len(set(names)) != len(names):
        raise InputError("two scenes share a name; outputs would clash (map them separately)")
    scenes = {name: SceneSpec(image, args.dem, mapping, args.cloud_mask)
              for image, name in zip(args.inputs, names, strict=True)}
    outs = {name: args.out if len(args.inputs) == 1 else args.out / name for name in scenes}
    inputs = [*args.checkpoint, args.dem, args.cloud_mask, *args.inputs]
    with OutputFolder(args.out, "predict", inputs, args.overwrite) as folder:
        folder.claim(out / name for out in outs.values()
                     for name in (*OUTPUT_NAMES.values(), UNCERTAINTY_NAME))
        # a bad or mismatched checkpoint fails here, before any scene is read
        predictor = build_predictor(spec)
        for scene in scenes.values():  # every scene checked before the first is mapped
            validate_scene(predictor, scene, options)
        for name, scene in scenes.items():
            summary = predict_scene(spec, scene, outs[name], options)
            print(f"{scene.image}: {summary['count']} landslides, {summary['total_area_m2']:.0f} m² "
                  f"-> {outs[name]} ({predictor.label})")
            print(json.dumps({k: summary[k] for k in ("threshold", "threshold_rule", "engine",
                                                       "inference_precision", "seconds",
                                                       "megapixels_per_second")}))
