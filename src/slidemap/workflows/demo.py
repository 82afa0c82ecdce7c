"""The demo: synthetic data -> train the paper's four models -> Table 1, figures -> map a
synthetic scene -> report, in minutes on a CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from slidemap.data.synthetic import generate_dataset, generate_scene
from slidemap.data.synthetic.patches import SUMMARY_FILE
from slidemap.data.synthetic.scene import SCENE_FILES
from slidemap.inference.mapping import OUTPUT_NAMES, predict_scene
from slidemap.inference.predictor import predictor_spec
from slidemap.inference.scene import SceneReader, SceneSpec
from slidemap.io.outputs import holding
from slidemap.models.checkpoint import read_trained_setup
from slidemap.plots.io import save_figure
from slidemap.plots.scene_map import plot_scene_map
from slidemap.workflows.compare import COMPARISON_OUTPUTS, ComparisonResult, run_comparison
from slidemap.workflows.configs import load_comparison

log = logging.getLogger(__name__)

#: the comparison the demo runs (shipped in the package).
DEMO_CONFIG = "demo.yaml"
#: the model that maps the scene when the comparison has it (else the last one).
SCENE_MODEL = "UNet-CBAM"
#: the figure of the mapped scene, beside the comparison's.
SCENE_MAP = "scene_map.png"


def run_demo(
    out: str | Path, overrides: Sequence[str] = (), scene_size: int = 1024, engine: str = "auto",
    *, overwrite: bool = False,
) -> ComparisonResult:
    """Run the demo into ``out``: ``data/`` (reused when an earlier demo made it), the
    comparison's files and, when ``scene_size > 0``, ``scene/`` and ``scene_map.png``.

    Args:
        out: the demo folder.
        overrides: ``--set`` values for the demo config (``base.trainer.max_epochs=3``).
        scene_size: side of the synthetic scene mapped at the end, px (0 skips it).
        engine: inference engine of the evaluations and of the scene (``auto``: torch for
            the patches, ONNX Runtime for the scene).
        overwrite: replace the outputs of an earlier demo in ``out`` (never another file;
            :mod:`slidemap.io.outputs`).
    """
    out = Path(out)
    config = load_comparison(DEMO_CONFIG, overrides)
    data = out / "data"
    with holding(out, "demo", overwrite=overwrite) as folder:
        folder.claim(COMPARISON_OUTPUTS)  # all refused before any training, not after
        if scene_size > 0:
            folder.claim([SCENE_MAP, *(Path("scene") / name for name in OUTPUT_NAMES.values()),
                          *(Path("scene") / "input" / name for name in SCENE_FILES.values())])
        if not (data / SUMMARY_FILE).is_file():  # reuse the dataset of an earlier demo
            log.info("synthesising %d patches into %s", config.synthetic_patches, data)
            generate_dataset(data, n_patches=config.synthetic_patches, seed=config.base.trainer.seed)
        config.base.data.root = str(data)
        result = run_comparison(config, out, engine=engine, overwrite=overwrite)
        if scene_size > 0:
            map_scene(result, out / "scene", scene_size, config.base.trainer.seed, engine)
    return result


def map_scene(result: ComparisonResult, out: Path, size_px: int, seed: int, engine: str = "auto") -> None:
    """Map a synthetic GeoTIFF scene with the comparison's UNet-CBAM (or its last model),
    as ``slidemap predict`` would, and add the map figure and a note to the report."""
    name = SCENE_MODEL if SCENE_MODEL in result.runs else next(reversed(result.runs))
    checkpoint = result.runs[name].best_checkpoint
    log.info("mapping a %d px synthetic scene with %s", size_px, name)
    paths = generate_scene(out / "input", size_px=size_px, seed=seed)
    scene = SceneSpec(paths["image"], paths["dem"])
    spec = predictor_spec(checkpoint, engine, "scene")
    summary = predict_scene(spec, scene, out, checkpoint=checkpoint)
    band_set = read_trained_setup(checkpoint).pipeline.band_set
    with SceneReader(scene, band_set) as reader:  # the raster bands holding red, green, blue
        rgb = [reader.choices[i][1].index for i in band_set.rgb_indices("the scene map")]
    figure = plot_scene_map(paths["image"], out / OUTPUT_NAMES["probability"],
                            out / OUTPUT_NAMES["gpkg"], rgb_bands=rgb,
                            title=f"{name} on a synthetic {size_px} x {size_px} px scene")
    map_png = save_figure(figure, result.out_dir / SCENE_MAP)
    result.figures.append(
        (f"Scene mapping: {name} on a synthetic {size_px} px Sentinel-2 scene + 30 m DEM "
         f"(probability, mapped landslides outlined)", map_png))
    result.notes.append(
        f"Scene: {summary['count']} landslides, {summary['total_area_m2'] / 1e4:.1f} ha, "
        f"threshold {summary['threshold']:.3f}, {spec.kind} engine, outputs in "
        f"{out.relative_to(result.out_dir)}/ ({', '.join(OUTPUT_NAMES.values())}).")
    result.rebuild_report()
