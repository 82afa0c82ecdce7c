"""``slidemap demo [--out runs/demo]``: synthetic data → train → compare → report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from slidemap.cli._runtime import setup_logging

if TYPE_CHECKING:
    from slidemap.evaluation.compare import ComparisonResult

HELP = ("the whole pipeline on synthetic data: train UNet, UNet-CBAM, SegNet, DP-FCN; "
        "Table 1, figures, a mapped scene, report")

DEMO_CONFIG = "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR",
                        help="output folder (default: runs/demo)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a value of the demo config, e.g. base.trainer.max_epochs=3")
    parser.add_argument("--scene-size", type=int, default=1024, metavar="PX",
                        help="side of the synthetic scene mapped at the end (0 skips it; default 1024)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the outputs of an earlier demo in --out (its data is reused)")
    parser.add_argument("--verbose", action="store_true", help="also show Lightning's messages")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    import logging

    from slidemap.config import load_compare_config
    from slidemap.data.synthetic import generate_dataset
    from slidemap.evaluation.compare import COMPARISON_OUTPUTS, run_comparison
    from slidemap.io.outputs import OutputFolder

    started = time.perf_counter()
    config = load_compare_config(DEMO_CONFIG, args.overrides)
    data = args.out / "data"
    with OutputFolder(args.out, "demo", overwrite=args.overwrite) as folder:
        folder.claim(COMPARISON_OUTPUTS)
        if not (data / "synthetic.json").is_file():  # reuse the dataset of an earlier demo
            logging.getLogger("slidemap").info("synthesising %d patches into %s",
                                               config.synthetic_patches, data)
            generate_dataset(data, n_patches=config.synthetic_patches, seed=config.base.trainer.seed)
        config.base.data.root = str(data)
        result = run_comparison(config, args.out, overwrite=args.overwrite)
        if args.scene_size > 0:
            _map_scene(result, args.out / "scene", args.scene_size, config.base.trainer.seed)
    print((args.out / "table1.md").read_text(encoding="utf-8"))
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {result.report_html}")
    print(f"        {result.report_md}")
    return 0


def _map_scene(result: ComparisonResult, out: Path, size_px: int, seed: int) -> None:
    """Map a synthetic GeoTIFF scene with the comparison's last model (UNet-CBAM in the
    demo) and add the map figure to the report (issue: the demo maps a scene too)."""
    import logging

    from slidemap.data.synthetic import generate_scene
    from slidemap.inference.engine import EngineSpec
    from slidemap.inference.mapping import predict_scene
    from slidemap.inference.scene import SceneSpec
    from slidemap.plots.io import save_figure
    from slidemap.plots.scene_map import plot_scene_map

    name = "UNet-CBAM" if "UNet-CBAM" in result.runs else next(reversed(result.runs))
    checkpoint = result.runs[name].best_checkpoint
    logging.getLogger("slidemap").info("mapping a %d px synthetic scene with %s", size_px, name)
    paths = generate_scene(out / "input", size_px=size_px, seed=seed)
    summary = predict_scene(EngineSpec(checkpoint, "torch"), SceneSpec(paths["image"], paths["dem"]),
                            out, checkpoint=checkpoint)
    figure = plot_scene_map(paths["image"], out / "probability.tif", out / "landslides.gpkg",
                            title=f"{name} on a synthetic {size_px} x {size_px} px scene")
    map_png = save_figure(figure, result.out_dir / "scene_map.png")
    result.figures.append(
        (f"Scene mapping: {name} on a synthetic {size_px} px Sentinel-2 scene + 30 m DEM "
         f"(probability, mapped landslides outlined)", map_png))
    result.notes.append(
        f"Scene: {summary['count']} landslides, {summary['total_area_m2'] / 1e4:.1f} ha, "
        f"threshold {summary['threshold']:.3f}, outputs in {out.relative_to(result.out_dir)}/ "
        "(probability.tif, mask.tif, landslides.gpkg, landslides.geojson, summary.json).")
    result.rebuild_report()
