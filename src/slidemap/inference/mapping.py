"""Mapping a GeoTIFF scene: probability and mask GeoTIFFs, landslide polygons, a summary.

:func:`predict_scene` runs three streaming passes, each holding one strip of rows:

1. **probability** — sliding windows (:mod:`slidemap.inference.sliding`), in this process
   or on Dask (:mod:`slidemap.inference.dask_tiles`), blended into ``probability.tif``;
2. **objects** — strips of the probability map (with the morphology's context rows) are
   thresholded, cleaned (:func:`~slidemap.inference.postprocess.morphology`) and
   vectorised; pieces cut at strip borders are merged, small holes filled and small
   objects dropped (:func:`~slidemap.inference.postprocess.filter_objects`);
3. **mask and attributes** — the kept polygons are burnt strip by strip into ``mask.tif``
   while per-polygon statistics accumulate; then ``landslides.gpkg``,
   ``landslides.geojson`` and ``summary.json`` are written.

Every file is written atomically and carries the input's CRS and transform.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rasterio.windows import Window
from shapely.strtree import STRtree

from slidemap.errors import ConfigError
from slidemap.inference.engine import Engine, EngineSource, resolve_engine
from slidemap.inference.postprocess import (
    PostprocessConfig,
    filter_objects,
    morphology,
    threshold_mask,
)
from slidemap.inference.scene import SceneReader, SceneSpec
from slidemap.inference.sliding import (
    DEFAULT_OVERLAP_PX,
    DEFAULT_WINDOW_PX,
    WindowPlan,
    WindowResult,
    blend_windows,
    iter_windows_local,
)
from slidemap.inference.vectorize import (
    ZonalStats,
    landslide_attributes,
    mask_to_polygons,
    merge_pieces,
    rasterize_ids,
    to_map_coordinates,
)
from slidemap.io.areas import GroundAreas
from slidemap.io.atomic import current_path, write_json_atomic
from slidemap.io.geotiff import GeoTiffWriter, RasterInfo, bounded_gdal_cache, open_raster
from slidemap.io.outputs import holding
from slidemap.io.resources import check_allocation
from slidemap.io.vector import write_polygons

log = logging.getLogger(__name__)

MASK_NODATA = 255
PROBABILITY_NODATA = float("nan")
OUTPUT_NAMES = {
    "probability": "probability.tif",
    "mask": "mask.tif",
    "gpkg": "landslides.gpkg",
    "geojson": "landslides.geojson",
    "summary": "summary.json",
}

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """``items`` with a tqdm bar on a terminal, unless ``SLIDEMAP_NO_PROGRESS=1``."""
    show = sys.stderr.isatty() and os.environ.get("SLIDEMAP_NO_PROGRESS", "0") in ("", "0")
    if not show:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=description, unit="win", leave=False)


@dataclass(frozen=True)
class MappingOptions:
    """How a scene is mapped.

    Attributes:
        window: window side, px (rounded up to the model's ``size_multiple``).
        overlap: px shared by neighbouring windows (see :mod:`slidemap.inference.sliding`).
        threshold: probability threshold; ``None`` uses the checkpoint's.
        postprocess: mask cleaning (morphology, min area, hole filling).
        workers: Dask workers on a local cluster (0 = in this process).
        scheduler: address of an existing Dask scheduler (overrides ``workers``).
        dask_processes: local Dask workers are processes (``False``: threads, for tests).
        scheduler_timeout_s: seconds to wait for ``scheduler`` before giving up.
    """

    window: int = DEFAULT_WINDOW_PX
    overlap: int = DEFAULT_OVERLAP_PX
    threshold: float | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    workers: int = 0
    scheduler: str | None = None
    dask_processes: bool = True
    scheduler_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scheduler_timeout_s) and self.scheduler_timeout_s > 0):
            raise ConfigError(f"scheduler timeout must be a positive number of seconds, got "
                              f"{self.scheduler_timeout_s}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")


#: bytes per pixel of the strips the three passes hold (sums, weights, probability, ids,
#: ground areas, masks, slope, for up to two windows of rows): an upper bound.
STRIP_BYTES_PER_PIXEL = 48


def check_strip_memory(info: RasterInfo, plan: WindowPlan) -> None:
    """Refuse a scene whose strips (two windows of rows of the full width) exceed the
    memory budget: its header alone declares the width (:mod:`slidemap.io.resources`)."""
    rows = 2 * max(plan.window, 64)
    check_allocation(float(info.width) * rows * STRIP_BYTES_PER_PIXEL,
                     f"mapping a raster {info.width} px wide ({rows}-row strips)", info.path)


def validate_scene(engine: Engine, scene: SceneSpec, options: MappingOptions) -> None:
    """Every check of a scene that needs no pixels: image and DEM readable, georeferenced
    and overlapping, bands mapped to the engine's band set, strips within memory."""
    with SceneReader(scene, engine.pipeline.band_set) as reader:
        plan = WindowPlan.create(reader.height, reader.width, options.window, options.overlap,
                                 engine.size_multiple)
        check_strip_memory(reader.info, plan)


def predict_probability(
    engine_source: EngineSource, scene: SceneSpec, out: Path, options: MappingOptions
) -> tuple[WindowPlan, RasterInfo]:
    """Pass 1: write ``out`` (float32 probability GeoTIFF, NaN = nodata) and return the plan."""
    engine = resolve_engine(engine_source)
    if engine.pipeline.elevation == "relative":
        log.warning(
            "the checkpoint uses relative elevation (median removed per array): per-window "
            "medians make scene predictions depend slightly on the window size"
        )
    with SceneReader(scene, engine.pipeline.band_set) as reader:
        _warn_pixel_size(engine, reader.info)
        plan = WindowPlan.create(
            reader.height, reader.width, options.window, options.overlap, engine.size_multiple
        )
        check_strip_memory(reader.info, plan)
        results: Iterable[WindowResult]
        if options.workers > 0 or options.scheduler:
            from slidemap.inference.dask_tiles import iter_windows_dask

            results = iter_windows_dask(
                engine_source, scene, plan, workers=options.workers, scheduler=options.scheduler,
                processes=options.dask_processes, scheduler_timeout_s=options.scheduler_timeout_s,
            )
        else:
            results = iter_windows_local(engine, reader, plan)
        with GeoTiffWriter(out, reader.info, "float32", PROBABILITY_NODATA,
                           description="landslide probability") as writer:
            blend_windows(plan, progress(results, len(plan), "windows"), writer.write)
        return plan, reader.info


def _warn_pixel_size(engine: Engine, info: RasterInfo) -> None:
    size = float(np.mean(info.pixel_size_m))
    trained = engine.pipeline.pixel_size_m
    if abs(size - trained) > 0.01 * trained:
        log.warning(
            "%s has %.2f m pixels but the model was trained at %.2f m; resample the scene for "
            "best results", info.path, size, trained,
        )


def _strips(height: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, height, rows):
        yield start, min(rows, height - start)


def find_objects(
    probability_path: Path, threshold: float, config: PostprocessConfig,
    pixel_area_m2: float | Callable[[float, float], float], strip_rows: int,
) -> list[Any]:
    """Pass 2: polygons (pixel coordinates) of the cleaned mask, read strip by strip.

    ``pixel_area_m2`` is a pixel's ground area, or ``(row, col) -> m²`` where it varies
    (:meth:`slidemap.io.areas.GroundAreas.pixel_area_m2`): the area thresholds are in m².
    """
    context = config.context_px
    pieces = []
    cuts: list[int] = []
    with open_raster(probability_path) as src:
        for start, rows in _strips(src.height, strip_rows):
            top = max(0, start - context)
            bottom = min(src.height, start + rows + context)
            block = src.read(1, window=Window(0, top, src.width, bottom - top))
            cleaned = morphology(threshold_mask(block, threshold), config)
            core = cleaned[start - top : start - top + rows]
            core &= np.isfinite(block[start - top : start - top + rows])
            pieces.extend(mask_to_polygons(core, row_off=start))
            if start > 0:
                cuts.append(start)
    return filter_objects(merge_pieces(pieces, cuts), config, pixel_area_m2)


def burn_mask(
    probability_path: Path, polygons: list[Any], out: Path, info: RasterInfo,
    reader: SceneReader | None, strip_rows: int, areas: GroundAreas | None = None,
) -> ZonalStats:
    """Pass 3: write ``out`` (uint8: 1 landslide, 0 background, 255 nodata) and return
    per-polygon statistics (probability; slope when ``reader`` has elevation; ground area
    from the pixels' areas on the ellipsoid, ``areas`` or else ``info``'s)."""
    areas = areas if areas is not None else info.ground_areas()
    stats = ZonalStats(len(polygons), ground_areas=True)
    tree = STRtree(polygons) if polygons else None
    with open_raster(probability_path) as src, GeoTiffWriter(
        out, info, "uint8", MASK_NODATA, description="landslide mask (1), background (0)"
    ) as writer:
        for start, rows in _strips(src.height, strip_rows):
            window = Window(0, start, src.width, rows)
            probability = src.read(1, window=window)
            ids = rasterize_ids(polygons, start, rows, src.width, tree)
            slope, slope_valid = (reader.slope_deg(window) if reader is not None else (None, None))
            stats.add(ids, probability, slope, slope_valid,
                      pixel_area_m2=areas.pixel_areas_m2(start, 0, rows, src.width) if ids.any() else None)
            mask = (ids > 0).astype(np.uint8)
            mask[~np.isfinite(probability)] = MASK_NODATA
            writer.write(mask, start, 0)
    return stats


def _has_elevation(reader: SceneReader) -> bool:
    return reader.spec.dem is not None or reader.band_set.has("dem", "dsm")


def predict_scene(
    engine_source: EngineSource,
    scene: SceneSpec,
    out_dir: str | Path,
    options: MappingOptions | None = None,
    *,
    checkpoint: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Map one GeoTIFF scene into ``out_dir``.

    Args:
        engine_source: an :class:`~slidemap.inference.engine.Engine` or an
            :class:`~slidemap.inference.engine.EngineSpec` (needed for Dask with processes).
        scene: the image (and DEM, band mapping).
        out_dir: folder for ``probability.tif``, ``mask.tif``, ``landslides.gpkg``,
            ``landslides.geojson`` and ``summary.json``.
        options: windows, threshold, post-processing, Dask.
        checkpoint: recorded in the summary.
        overwrite: replace slidemap's own earlier outputs in ``out_dir`` (a calling command's
            output folder decides instead when it holds ``out_dir``).

    The five outputs are a set (:mod:`slidemap.io.outputs`): written under temporary
    names and renamed together at the end; none replaces an input or a file slidemap did
    not write.

    Returns:
        The summary written to ``summary.json``: ``count``, ``total_area_m2``,
        ``threshold``, ``model``, ``inputs``, ``window``, ``outputs``, ``crs``,
        ``seconds`` and more.

    Raises:
        InputError, CheckpointError, ConfigError, OutputError: naming the file at fault.
    """
    options = options or MappingOptions()
    out_dir = Path(out_dir)
    paths = {key: out_dir / name for key, name in OUTPUT_NAMES.items()}
    engine = resolve_engine(engine_source)
    threshold = engine.threshold if options.threshold is None else float(options.threshold)
    started = time.perf_counter()

    inputs = [scene.image, scene.dem, checkpoint]
    with holding(out_dir, "predict", inputs, overwrite) as folder, folder.output_set():
        folder.claim(paths.values())
        with bounded_gdal_cache():
            plan, info = predict_probability(engine_source, scene, paths["probability"], options)
            probability = current_path(paths["probability"])  # staged until the set is whole
            areas = info.ground_areas()
            seconds_model = time.perf_counter() - started
            strip_rows = max(plan.window, 64)
            polygons = find_objects(probability, threshold, options.postprocess,
                                    areas.pixel_area_m2, strip_rows)
            with SceneReader(scene, engine.pipeline.band_set) as reader:
                stats = burn_mask(probability, polygons, paths["mask"], info,
                                  reader if _has_elevation(reader) else None, strip_rows, areas)
        attributes = landslide_attributes(polygons, stats)
        geometries = to_map_coordinates(polygons, info.transform)
        for key in ("gpkg", "geojson"):
            write_polygons(paths[key], geometries, attributes, info.crs)
        summary = _summary(scene, info, plan, options, engine.model_name, threshold, polygons,
                           attributes, paths, checkpoint, started, seconds_model, areas)
        write_json_atomic(paths["summary"], summary)
    return summary


def _summary(
    scene: SceneSpec, info: RasterInfo, plan: WindowPlan, options: MappingOptions, model: str,
    threshold: float, polygons: list[Any], attributes: dict[str, np.ndarray],
    paths: dict[str, Path], checkpoint: str | Path | None, started: float, seconds_model: float,
    areas: GroundAreas,
) -> dict[str, Any]:
    """What ``summary.json`` holds (strict JSON: every number finite)."""
    summary: dict[str, Any] = {
        "count": len(polygons),
        "total_area_m2": float(attributes["area_m2"].sum()),
        "threshold": threshold,
        "model": model,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "inputs": {"image": str(scene.image), "dem": None if scene.dem is None else str(scene.dem),
                   "band_mapping": dict(scene.band_mapping) or None},
        "crs": info.crs.to_string(),
        "transform": list(info.transform)[:6],
        "size_px": [info.height, info.width],
        "pixel_size_m": list(info.pixel_size_m),
        "pixel_area_m2": areas.centre_pixel_area_m2,
        "window": {"window_px": plan.window, "overlap_px": plan.overlap, "margin_px": plan.margin,
                   "align_px": plan.align, "n_windows": len(plan)},
        "postprocess": asdict(options.postprocess),
        "dask": {"workers": options.workers, "scheduler": options.scheduler},
        "outputs": {key: path.name for key, path in paths.items()},
        "seconds": {"probability": round(seconds_model, 3),
                    "total": round(time.perf_counter() - started, 3)},
        "megapixels_per_second": round(info.width * info.height / 1e6 / max(seconds_model, 1e-9), 4),
    }
    return summary
