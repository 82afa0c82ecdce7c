"""Mapping a scene: probability and mask GeoTIFFs, landslide polygons, a summary.

:func:`predict_scene` first checks the scene's radiometry on a sample
(:func:`~slidemap.inference.radiometry.check_radiometry`), then runs three streaming
passes, each holding one strip of rows:

1. **probability** — sliding windows (:mod:`slidemap.inference.sliding`), in this process
   or on Dask (:mod:`slidemap.inference.dask_tiles`), blended into ``probability.tif`` (and,
   with test-time augmentation or an ensemble, the members' standard deviation into
   ``uncertainty.tif``);
2. **objects** — strips of the probability map (with the morphology's context rows) are
   thresholded, cleaned (:func:`~slidemap.inference.postprocess.morphology`) and
   vectorised; pieces cut at strip borders are merged, small holes filled and small
   objects dropped (:func:`~slidemap.inference.postprocess.filter_objects`);
3. **mask and attributes** — the kept polygons are burnt strip by strip into ``mask.tif``
   (:data:`MASK_LANDSLIDE`, :data:`MASK_BACKGROUND`, :data:`MASK_NOT_ASSESSABLE` where the
   scene cannot be judged — clouds, shadows, snow, saturation, no DEM — and
   :data:`MASK_NODATA` outside the data) while per-polygon statistics (probability, and
   uncertainty when mapped; terrain when there is elevation,
   :mod:`~slidemap.inference.attributes`) and the assessable and
   not-assessable areas accumulate; then ``landslides.gpkg``, ``landslides.geojson``
   (layer ``landslides``) and ``summary.json`` are written.

Not-assessable pixels are nodata for the network (like pixels outside the scene) and NaN in
``probability.tif``, so they are never part of a polygon.

Every file is written atomically and carries the input's CRS and transform; the rasters are
Cloud-Optimized GeoTIFFs with internal overviews (:mod:`slidemap.io.cog`). A scene's outputs
are one set (:mod:`slidemap.io.outputs`): staged under temporary names and renamed together at
the end, and none replaces an input or a file slidemap did not write. Areas are ground areas
on the ellipsoid (:class:`slidemap.io.ground.GroundAreas`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
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
from slidemap.inference.postprocess import (
    PostprocessConfig,
    filter_objects,
    morphology,
    threshold_mask,
)
from slidemap.inference.predictor import (
    Predictor,
    PredictorSource,
    for_workers,
    resolve_predictor,
)
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
    BlendedRows,
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
from slidemap.io.atomic import current_path, write_json_atomic
from slidemap.io.cog import PAM_SUFFIX, Category, CogWriter, RasterLayer
from slidemap.io.geotiff import RasterInfo, bounded_gdal_cache, open_raster
from slidemap.io.ground import GroundFrame
from slidemap.io.outputs import holding
from slidemap.io.resources import check_allocation
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
#: The members' standard deviation (test-time augmentation or an ensemble); overviews average it.
UNCERTAINTY_LAYER = RasterLayer("float32", PROBABILITY_NODATA,
                                "standard deviation of the members' landslide probabilities",
                                Resampling.average)
#: Written only with test-time augmentation or an ensemble (not in :data:`OUTPUT_NAMES`).
UNCERTAINTY_NAME = "uncertainty.tif"
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
        scheduler_timeout_s: seconds to wait for ``scheduler`` before giving up.
    """

    window: int = DEFAULT_WINDOW_PX
    overlap: int = DEFAULT_OVERLAP_PX
    threshold: float | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    workers: int = 0
    scheduler: str | None = None
    dask_processes: bool = True
    accept_radiometry: bool = False
    scheduler_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.threshold is not None:
            check_threshold(self.threshold)
        if not (math.isfinite(self.scheduler_timeout_s) and self.scheduler_timeout_s > 0):
            raise ConfigError(f"scheduler timeout must be a positive number of seconds, got "
                              f"{self.scheduler_timeout_s}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")


#: bytes per pixel of the strips the three passes hold (sums, weights, probability, ids,
#: ground areas, status, masks, elevation, for up to two windows of rows): an upper bound.
STRIP_BYTES_PER_PIXEL = 64


def check_strip_memory(info: RasterInfo, plan: WindowPlan) -> None:
    """Refuse a scene whose strips (two windows of rows of the full width) exceed the
    memory budget: its header alone declares the width (:mod:`slidemap.io.resources`)."""
    rows = 2 * max(plan.window, 64)
    check_allocation(float(info.width) * rows * STRIP_BYTES_PER_PIXEL,
                     f"mapping a raster {info.width} px wide ({rows}-row strips)", info.path)


def plan_windows(reader: SceneReader, predictor: Predictor, options: MappingOptions) -> WindowPlan:
    """The scene's windows for ``predictor``, their strips checked against the memory budget."""
    plan = WindowPlan.create(reader.height, reader.width, options.window, options.overlap,
                             predictor.size_multiple)
    check_strip_memory(reader.info, plan)
    return plan


def validate_scene(predictor: Predictor, scene: SceneSpec, options: MappingOptions) -> None:
    """Every check of a scene that needs no mapping: image, DEM and cloud mask readable,
    georeferenced and overlapping, bands mapped to the engine's band set, strips within
    memory."""
    with SceneReader(scene, predictor.pipeline.band_set) as reader:
        plan_windows(reader, predictor, options)


def predict_probability(
    source: PredictorSource, scene: SceneSpec, out: Path, options: MappingOptions,
    uncertainty_out: Path | None = None,
) -> tuple[WindowPlan, RasterInfo]:
    """Pass 1: write ``out`` (float32 probability GeoTIFF, NaN = nodata) and, when the
    predictor has several members and ``uncertainty_out`` is given, their standard
    deviation there; return the plan."""
    predictor = resolve_predictor(source)
    with_uncertainty = uncertainty_out is not None and predictor.has_uncertainty
    if predictor.pipeline.elevation == "relative":
        log.warning(
            "the checkpoint uses relative elevation (median removed per array): per-window "
            "medians make scene predictions depend slightly on the window size"
        )
    with SceneReader(scene, predictor.pipeline.band_set) as reader:
        _warn_pixel_size(predictor, reader.info)
        plan = plan_windows(reader, predictor, options)
        results: Iterable[WindowResult]
        if options.workers > 0 or options.scheduler:
            from slidemap.inference.dask_tiles import iter_windows_dask

            results = iter_windows_dask(
                for_workers(source, predictor), scene, plan, workers=options.workers,
                scheduler=options.scheduler, processes=options.dask_processes,
                scheduler_timeout_s=options.scheduler_timeout_s,
            )
        else:
            results = iter_windows_local(predictor, reader, plan)
        with contextlib.ExitStack() as stack:
            writer = stack.enter_context(CogWriter(out, reader.info, PROBABILITY_LAYER))
            spread = (stack.enter_context(CogWriter(uncertainty_out, reader.info, UNCERTAINTY_LAYER))
                      if with_uncertainty and uncertainty_out is not None else None)

            def write(rows: BlendedRows) -> None:
                writer.write(rows.probability, rows.first)
                if spread is not None and rows.uncertainty is not None:
                    spread.write(rows.uncertainty, rows.first)

            blend_windows(plan, progress(results, len(plan), "windows"), write, with_uncertainty)
        return plan, reader.info


def _warn_pixel_size(predictor: Predictor, info: RasterInfo) -> None:
    size = float(np.mean(info.pixel_size_m))
    trained = predictor.pipeline.pixel_size_m
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
    (:meth:`slidemap.io.ground.GroundAreas.pixel_area_m2`): the area thresholds are in m².
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
    uncertainty_path: Path | None = None,
) -> tuple[ZonalStats, AreaTally, TerrainStats | None]:
    """Pass 3: write ``out`` (uint8: 1 landslide, 0 background, 2 not assessable, 255 no
    data) and return per-polygon statistics (probability, and the uncertainty of
    ``uncertainty_path`` when given; terrain when the scene has elevation, ``jacobians``
    being each polygon's pixel-to-ground Jacobian) and the areas by status; ``area_m2`` of
    each polygon is the ground area of its pixels."""
    stats = ZonalStats(len(polygons), ground_areas=True, uncertainty=uncertainty_path is not None)
    areas = AreaTally()
    terrain = TerrainStats(jacobians) if reader.has_elevation else None
    tree = STRtree(polygons) if polygons else None
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_raster(probability_path))
        spread = None if uncertainty_path is None else stack.enter_context(open_raster(uncertainty_path))
        writer = stack.enter_context(CogWriter(out, info, MASK_LAYER))
        for start, rows in _strips(src.height, strip_rows):
            window = Window(0, start, src.width, rows)
            probability = src.read(1, window=window)
            ids = rasterize_ids(polygons, start, rows, src.width, tree)
            stats.add(ids, probability,
                      info.ground_areas.label_areas_m2(ids, len(polygons), start) if ids.any() else None,
                      None if spread is None else spread.read(1, window=window))
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
    source: PredictorSource,
    scene: SceneSpec,
    out_dir: str | Path,
    options: MappingOptions | None = None,
    *,
    checkpoint: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Map one GeoTIFF scene into ``out_dir``.

    Args:
        source: a :class:`~slidemap.inference.predictor.Predictor` or an engine, or their
            picklable specs (:class:`~slidemap.inference.predictor.PredictorSpec`,
            :class:`~slidemap.inference.engine.EngineSpec`; needed for Dask with processes).
        scene: the image (and DEM, band mapping).
        out_dir: folder for ``probability.tif``, ``mask.tif``, ``landslides.gpkg``,
            ``landslides.geojson`` and ``summary.json``; with test-time augmentation or an
            ensemble also ``uncertainty.tif`` (an ``uncertainty.tif`` of an earlier run is
            removed otherwise, so it never sits next to a map it does not belong to).
        options: windows, threshold, post-processing, Dask.
        checkpoint: recorded in the summary (default: the predictor's own files).
        overwrite: replace slidemap's own earlier outputs in ``out_dir`` (a calling command's
            output folder decides instead when it holds ``out_dir``).

    The outputs are a set (:mod:`slidemap.io.outputs`): written under temporary names and
    renamed together at the end; none replaces an input or a file slidemap did not write.

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
    predictor = resolve_predictor(source)
    uncertainty_path = out_dir / UNCERTAINTY_NAME
    inputs = [scene.image, scene.dem, scene.cloud_mask, checkpoint,
              *(path for path in predictor.sources if path is not None)]
    with holding(out_dir, "predict", inputs, overwrite) as folder:
        # an uncertainty.tif of an earlier run is ours to replace (or remove) like the others
        folder.claim([*paths.values(), uncertainty_path])
        with folder.output_set():
            summary = _map_scene(predictor, source, scene, paths,
                                 uncertainty_path if predictor.has_uncertainty else None,
                                 options, checkpoint)
        if not predictor.has_uncertainty and uncertainty_path.is_file():
            # an earlier run's, never left beside a map it does not belong to
            log.info("removing %s of an earlier run", uncertainty_path)
            uncertainty_path.unlink()
            Path(f"{uncertainty_path}{PAM_SUFFIX}").unlink(missing_ok=True)
    coverage = summary["dem_coverage_fraction"]
    if coverage is not None and coverage < 1.0:
        log.warning("%s: the DEM covers %.1f %% of the imaged area; the rest (%.0f m²) is not assessable "
                    "(2 in mask.tif)", scene.image, 100 * coverage, summary["not_assessable_m2"]["no_elevation"])
    return summary


def _map_scene(predictor: Predictor, source: PredictorSource, scene: SceneSpec,
               paths: dict[str, Path], uncertainty_path: Path | None, options: MappingOptions,
               checkpoint: str | Path | None) -> dict[str, Any]:
    """The three passes and the summary of :func:`predict_scene`, inside its output set."""
    threshold = predictor.threshold if options.threshold is None else float(options.threshold)
    started = time.perf_counter()

    with bounded_gdal_cache():
        with SceneReader(scene, predictor.pipeline.band_set) as reader:
            radiometry = check_radiometry(reader, predictor.stats, accept=options.accept_radiometry)
            _warn_dem_coverage(reader, radiometry)
        plan, info = predict_probability(for_workers(source, predictor), scene, paths["probability"],
                                         options, uncertainty_path)
        probability = current_path(paths["probability"])  # staged until the set is whole
        spread = None if uncertainty_path is None else current_path(uncertainty_path)
        seconds_model = time.perf_counter() - started
        strip_rows = max(plan.window, 64)
        polygons = find_objects(probability, threshold, options.postprocess,
                                info.ground_areas.pixel_area_m2, strip_rows)
        frame = GroundFrame(info.crs)
        jacobians = polygon_jacobians(polygons, info.transform, frame)
        with SceneReader(scene, predictor.pipeline.band_set) as reader:
            stats, areas, terrain = burn_mask(probability, polygons, paths["mask"], info,
                                              reader, strip_rows, jacobians, spread)
            band_mapping = reader.band_mapping()
    geometries = to_map_coordinates(polygons, info.transform)
    shape = shape_columns(geometries, frame)
    attributes = {
        **landslide_attributes(polygons, stats),
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
        "threshold_rule": predictor.threshold_rule(options.threshold),
        "model": predictor.model_name,
        **predictor.record(),
        **({} if checkpoint is None else {"checkpoint": str(checkpoint)}),
        **areas.summary(scene.dem is not None),
        "inputs": {"image": str(scene.image), "dem": None if scene.dem is None else str(scene.dem),
                   "cloud_mask": None if scene.cloud_mask is None else str(scene.cloud_mask),
                   "band_mapping": dict(scene.band_mapping) or None, "bands": band_mapping},
        "radiometry": radiometry,
        "crs": info.crs.to_string(),
        "transform": list(info.transform)[:6],
        "size_px": [info.height, info.width],
        "pixel_size_m": list(info.pixel_size_m),
        "pixel_area_m2": info.pixel_area_m2,
        "window": {"window_px": plan.window, "overlap_px": plan.overlap, "margin_px": plan.margin,
                   "align_px": plan.align, "n_windows": len(plan)},
        "postprocess": asdict(options.postprocess),
        "dask": {"workers": options.workers, "scheduler": options.scheduler},
        "outputs": {key: path.name for key, path in paths.items()}
                   | ({} if uncertainty_path is None else {"uncertainty": uncertainty_path.name}),
        "seconds": {"probability": round(seconds_model, 3),
                    "total": round(time.perf_counter() - started, 3)},
        "megapixels_per_second": round(info.width * info.height / 1e6 / max(seconds_model, 1e-9), 4),
    }
    write_json_atomic(paths["summary"], summary)
    return summary


def _warn_dem_coverage(reader: SceneReader, radiometry: dict[str, Any]) -> None:
    """Warn before mapping when the radiometry sample shows a DEM that covers part of the scene."""
    coverage = radiometry.get("dem_coverage_of_sample")
    if coverage is not None and coverage < 1.0:
        log.warning("%s: the DEM %s covers about %.0f %% of the scene (sample); the rest will be not "
                    "assessable", reader.spec.image, reader.spec.dem, 100 * coverage)
