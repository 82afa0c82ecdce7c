"""Mapping a scene: probability and mask GeoTIFFs, landslide polygons, a summary.

:func:`predict_scene` first checks the scene's radiometry on a sample
(:func:`~slidemap.inference.radiometry.check_radiometry`), then runs three streaming
passes, each holding one strip of rows:

1. **probability** — sliding windows (:mod:`slidemap.inference.sliding`), in this process
   or on Dask (:mod:`slidemap.inference.dask_tiles`), blended into ``probability.tif``;
2. **objects** — strips of the probability map (with the morphology's context rows) are
   thresholded, cleaned (:func:`~slidemap.inference.postprocess.morphology`) and
   vectorised; pieces cut at strip borders are merged, small holes filled and small
   objects dropped (:func:`~slidemap.inference.postprocess.filter_objects`);
3. **mask and attributes** — the kept polygons are burnt strip by strip into ``mask.tif``
   (:data:`MASK_LANDSLIDE`, :data:`MASK_BACKGROUND`, :data:`MASK_NOT_ASSESSABLE` where the
   scene cannot be judged — clouds, shadows, snow, saturation, no DEM — and
   :data:`MASK_NODATA` outside the data) while per-polygon statistics (probability; terrain
   when there is elevation, :mod:`~slidemap.inference.attributes`) and the assessable and
   not-assessable areas accumulate; then ``landslides.gpkg``, ``landslides.geojson``
   (layer ``landslides``) and ``summary.json`` are written.

Not-assessable pixels are nodata for the network (like pixels outside the scene) and NaN in
``probability.tif``, so they are never part of a polygon.

Every file is written atomically and carries the input's CRS and transform; the rasters are
Cloud-Optimized GeoTIFFs with internal overviews (:mod:`slidemap.io.cog`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window
from shapely.strtree import STRtree

from slidemap.config import check_threshold
from slidemap.config.environment import progress_enabled
from slidemap.errors import ConfigError
from slidemap.inference.attributes import (
    TerrainStats,
    no_terrain_columns,
    polygon_jacobians,
    shape_columns,
)
from slidemap.inference.engine import Engine, EngineSource, EngineSpec, resolve_engine
from slidemap.inference.postprocess import (
    PostprocessConfig,
    filter_objects,
    morphology,
    threshold_mask,
)
from slidemap.inference.predictor import Predictor
from slidemap.inference.radiometry import check_radiometry
from slidemap.inference.scene import (
    FLAG_NO_ELEVATION,
    FLAG_NOT_ASSESSABLE,
    STATUS_ASSESSABLE,
    STATUS_OUTSIDE,
    SceneReader,
    SceneSpec,
)
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
from slidemap.io.atomic import write_text_atomic
from slidemap.io.cog import PAM_SUFFIX, Category, CogWriter, RasterLayer
from slidemap.io.geotiff import RasterInfo, bounded_gdal_cache, open_raster
from slidemap.io.ground import GroundFrame
from slidemap.io.vector import write_polygons

log = logging.getLogger(__name__)

MASK_BACKGROUND = 0
MASK_LANDSLIDE = 1
MASK_NOT_ASSESSABLE = 2
MASK_NODATA = 255
PROBABILITY_NODATA = float("nan")
#: The classes of ``mask.tif``, with the names and colours GIS software shows for them.
MASK_CLASSES: tuple[Category, ...] = (
    Category(MASK_BACKGROUND, "no landslide", (235, 235, 235, 255)),
    Category(MASK_LANDSLIDE, "landslide", (215, 25, 28, 255)),
    Category(MASK_NOT_ASSESSABLE, "not assessable", (120, 120, 160, 255)),  # clouds, shadows, snow
    Category(MASK_NODATA, "outside the data", (0, 0, 0, 0)),
)
#: Overviews: the mean probability of the pixels they cover; the most frequent class.
PROBABILITY_LAYER = RasterLayer("float32", PROBABILITY_NODATA, "landslide probability",
                                Resampling.average)
MASK_LAYER = RasterLayer("uint8", MASK_NODATA, "landslide mask: " + ", ".join(
    f"{c.value} {c.name}" for c in MASK_CLASSES), Resampling.mode, MASK_CLASSES)
OUTPUT_NAMES = {
    "probability": "probability.tif",
    "mask": "mask.tif",
    "mask_categories": "mask.tif" + PAM_SUFFIX,  # written with mask.tif (io.cog.CogWriter)
    "gpkg": "landslides.gpkg",
    "geojson": "landslides.geojson",
    "summary": "summary.json",
}

T = TypeVar("T")


def progress(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """``items`` with a tqdm bar when :func:`~slidemap.config.environment.progress_enabled`."""
    if not progress_enabled():
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
        accept_radiometry: map a scene the radiometry check finds implausible (with warnings).
    """

    window: int = DEFAULT_WINDOW_PX
    overlap: int = DEFAULT_OVERLAP_PX
    threshold: float | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    workers: int = 0
    scheduler: str | None = None
    dask_processes: bool = True
    accept_radiometry: bool = False

    def __post_init__(self) -> None:
        if self.threshold is not None:
            check_threshold(self.threshold)
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")


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
        results: Iterable[WindowResult]
        if options.workers > 0 or options.scheduler:
            from slidemap.inference.dask_tiles import iter_windows_dask

            results = iter_windows_dask(
                engine_source, scene, plan, workers=options.workers, scheduler=options.scheduler,
                processes=options.dask_processes,
            )
        else:
            results = iter_windows_local(engine, reader, plan)
        with CogWriter(out, reader.info, PROBABILITY_LAYER) as writer:
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
    probability_path: Path, threshold: float, config: PostprocessConfig, pixel_area_m2: float,
    strip_rows: int,
) -> list[Any]:
    """Pass 2: polygons (pixel coordinates) of the cleaned mask, read strip by strip."""
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


@dataclass
class AreaTally:
    """Areas (m²) of the scene by pixel status, summed strip by strip."""

    assessable: float = 0.0
    not_assessable: float = 0.0
    flagged: float = 0.0
    no_elevation: float = 0.0
    outside: float = 0.0

    def add(self, status: np.ndarray, info: RasterInfo, row_off: int) -> None:
        data = status != STATUS_OUTSIDE
        self.assessable += info.area_m2(status == STATUS_ASSESSABLE, row_off)
        self.not_assessable += info.area_m2(data & (status != STATUS_ASSESSABLE), row_off)
        self.flagged += info.area_m2(data & (status & FLAG_NOT_ASSESSABLE > 0), row_off)
        self.no_elevation += info.area_m2(data & (status & FLAG_NO_ELEVATION > 0), row_off)
        self.outside += info.area_m2(~data, row_off)

    def summary(self, has_dem: bool) -> dict[str, Any]:
        imaged = self.assessable + self.not_assessable
        return {
            "assessable_area_m2": round(self.assessable, 1),
            "not_assessable_area_m2": round(self.not_assessable, 1),
            "assessable_fraction": round(self.assessable / imaged, 6) if imaged > 0 else None,
            "not_assessable_m2": {"clouds_shadows_snow_saturated": round(self.flagged, 1),
                                  "no_elevation": round(self.no_elevation, 1)},
            "dem_coverage_fraction": (round(1 - self.no_elevation / imaged, 6)
                                      if has_dem and imaged > 0 else None),
            "outside_data_area_m2": round(self.outside, 1),
        }


def burn_mask(
    probability_path: Path, polygons: list[Any], out: Path, info: RasterInfo,
    reader: SceneReader, strip_rows: int, jacobians: np.ndarray,
) -> tuple[ZonalStats, AreaTally, TerrainStats | None]:
    """Pass 3: write ``out`` (uint8: 1 landslide, 0 background, 2 not assessable, 255 no
    data) and return per-polygon statistics (probability; terrain when the scene has
    elevation, ``jacobians`` being each polygon's pixel-to-ground Jacobian) and the areas
    by status."""
    stats = ZonalStats(len(polygons))
    areas = AreaTally()
    terrain = TerrainStats(jacobians) if reader.has_elevation else None
    tree = STRtree(polygons) if polygons else None
    with open_raster(probability_path) as src, CogWriter(out, info, MASK_LAYER) as writer:
        for start, rows in _strips(src.height, strip_rows):
            window = Window(0, start, src.width, rows)
            probability = src.read(1, window=window)
            ids = rasterize_ids(polygons, start, rows, src.width, tree)
            stats.add(ids, probability)
            status = reader.status(window)
            status[(status == STATUS_ASSESSABLE) & ~np.isfinite(probability)] = STATUS_OUTSIDE
            areas.add(status, info, start)
            if terrain is not None:
                elevation, dz_dcol, dz_drow = reader.elevation_gradient_px(window)
                terrain.add(np.where(np.isfinite(probability), ids, 0), elevation, dz_dcol, dz_drow)
            mask = np.where(ids > 0, MASK_LANDSLIDE, MASK_BACKGROUND).astype(np.uint8)
            mask[status != STATUS_ASSESSABLE] = MASK_NOT_ASSESSABLE
            mask[status == STATUS_OUTSIDE] = MASK_NODATA
            writer.write(mask, start, 0)
    return stats, areas, terrain


def predict_scene(
    engine_source: EngineSource,
    scene: SceneSpec,
    out_dir: str | Path,
    options: MappingOptions | None = None,
    *,
    checkpoint: str | Path | None = None,
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

    Returns:
        The summary written to ``summary.json``: ``count``, ``total_area_m2``,
        ``threshold``, ``model``, ``inputs``, ``window``, ``outputs``, ``crs``,
        ``seconds`` and more.

    Raises:
        InputError, CheckpointError, ConfigError: naming the file at fault.
    """
    options = options or MappingOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: out_dir / name for key, name in OUTPUT_NAMES.items()}
    engine = resolve_engine(engine_source)
    threshold = engine.threshold if options.threshold is None else float(options.threshold)
    started = time.perf_counter()

    with bounded_gdal_cache():
        with SceneReader(scene, engine.pipeline.band_set) as reader:
            radiometry = check_radiometry(reader, engine.stats, accept=options.accept_radiometry)
            _warn_dem_coverage(reader, radiometry)
        plan, info = predict_probability(engine_source, scene, paths["probability"], options)
        seconds_model = time.perf_counter() - started
        strip_rows = max(plan.window, 64)
        polygons = find_objects(paths["probability"], threshold, options.postprocess,
                                info.pixel_area_m2, strip_rows)
        frame = GroundFrame(info.crs)
        jacobians = polygon_jacobians(polygons, info.transform, frame)
        with SceneReader(scene, engine.pipeline.band_set) as reader:
            stats, areas, terrain = burn_mask(paths["probability"], polygons, paths["mask"], info,
                                              reader, strip_rows, jacobians)
            band_mapping = reader.band_mapping()
    geometries = to_map_coordinates(polygons, info.transform)
    shape = shape_columns(geometries, frame)
    attributes = {
        **landslide_attributes(polygons, stats, info.pixel_area_m2),
        **shape,
        **(terrain.columns(shape["length_m"]) if terrain is not None
           else no_terrain_columns(len(polygons))),
    }
    for key in ("gpkg", "geojson"):
        write_polygons(paths[key], geometries, attributes, info.crs)

    summary: dict[str, Any] = {
        "count": len(polygons),
        "total_area_m2": float(attributes["area_m2"].sum()),
        "threshold": threshold,
        "model": engine.model_name,
        **Predictor(engine, engine_source.kind if isinstance(engine_source, EngineSpec) else None).record(),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        **areas.summary(scene.dem is not None),
        "inputs": {"image": str(scene.image), "dem": None if scene.dem is None else str(scene.dem),
                   "cloud_mask": None if scene.cloud_mask is None else str(scene.cloud_mask),
                   "band_mapping": dict(scene.band_mapping) or None, "bands": band_mapping},
        "radiometry": radiometry,
        "crs": info.crs.to_string(),
        "transform": list(info.transform)[:6],
        "size_px": [info.height, info.width],
        "pixel_size_m": list(info.pixel_size_m),
        "window": {"window_px": plan.window, "overlap_px": plan.overlap, "margin_px": plan.margin,
                   "align_px": plan.align, "n_windows": len(plan)},
        "postprocess": asdict(options.postprocess),
        "dask": {"workers": options.workers, "scheduler": options.scheduler},
        "outputs": {key: path.name for key, path in paths.items()},
        "seconds": {"probability": round(seconds_model, 3),
                    "total": round(time.perf_counter() - started, 3)},
        "megapixels_per_second": round(info.width * info.height / 1e6 / max(seconds_model, 1e-9), 4),
    }
    write_text_atomic(paths["summary"], json.dumps(summary, indent=2) + "\n")
    coverage = summary["dem_coverage_fraction"]
    if coverage is not None and coverage < 1.0:
        log.warning("%s: the DEM covers %.1f %% of the imaged area; the rest (%.0f m²) is not assessable "
                    "(2 in mask.tif)", scene.image, 100 * coverage, summary["not_assessable_m2"]["no_elevation"])
    return summary


def _warn_dem_coverage(reader: SceneReader, radiometry: dict[str, Any]) -> None:
    """Warn before mapping when the radiometry sample shows a DEM that covers part of the scene."""
    coverage = radiometry.get("dem_coverage_of_sample")
    if coverage is not None and coverage < 1.0:
        log.warning("%s: the DEM %s covers about %.0f %% of the scene (sample); the rest will be not "
                    "assessable", reader.spec.image, reader.spec.dem, 100 * coverage)
