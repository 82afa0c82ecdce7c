"""A mapped scene at a glance: landslide probability over the image, polygons outlined.

The figure reads the scene's outputs (``probability.tif`` and ``landslides.gpkg``) and the
input image at a reduced resolution (GDAL decimated reads), so a scene of any size makes
a figure of a few megapixels without being loaded whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import shapely
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from rasterio.enums import Resampling

from slidemap.io.vector import read_polygons
from slidemap.plots.panels import percentile_stretch


def _decimated(path: Path, bands: Sequence[int], max_side: int) -> tuple[np.ndarray, float]:
    """``(len(bands), h, w)`` float32 read with at most ``max_side`` px a side, and the
    decimation factor (input px per output px). Nodata reads as NaN."""
    with rasterio.open(path) as src:
        factor = max(1.0, max(src.width, src.height) / max_side)
        shape = (len(bands), max(1, round(src.height / factor)), max(1, round(src.width / factor)))
        values = src.read(list(bands), out_shape=shape, resampling=Resampling.average,
                          out_dtype="float32", masked=True)
    return values.filled(np.nan), factor


def plot_scene_map(
    image_path: str | Path,
    probability_path: str | Path,
    polygons_path: str | Path | None = None,
    *,
    rgb_bands: Sequence[int],
    max_side: int = 1200,
    title: str | None = None,
) -> Figure:
    """Two panels: the true-colour image with landslide polygons outlined, and the
    landslide probability over a grey version of the image.

    Args:
        image_path: the input scene (GeoTIFF).
        rgb_bands: its 1-based red, green and blue raster bands (where the band set's
            :meth:`~slidemap.bands.BandSet.rgb_indices` bands were found in the raster).
        probability_path: ``probability.tif`` written by ``slidemap predict`` (float32 0–1,
            same grid as the image).
        polygons_path: ``landslides.gpkg`` (in the image's CRS); ``None`` for none.
        max_side: longest side of the displayed rasters, px.
        title: figure title.
    """
    image_path, probability_path = Path(image_path), Path(probability_path)
    rgb, factor = _decimated(image_path, rgb_bands, max_side)
    probability, _ = _decimated(probability_path, [1], max_side)
    rgb_display = np.nan_to_num(percentile_stretch(rgb), nan=0.0)
    grey = rgb_display.mean(axis=-1)

    outlines: list[np.ndarray] = []  # rings: exteriors and holes
    n_landslides = 0
    if polygons_path is not None and Path(polygons_path).is_file():
        with rasterio.open(image_path) as src:
            inverse = ~src.transform
        geometries, _, _ = read_polygons(polygons_path)
        n_landslides = len(geometries)
        for polygon in shapely.get_parts(geometries):
            for ring in (polygon.exterior, *polygon.interiors):
                x, y = np.asarray(ring.coords).T
                col, row = inverse @ (x, y)
                outlines.append(np.column_stack([np.asarray(col), np.asarray(row)]) / factor)

    fig = Figure(figsize=(12, 6.2), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    left.imshow(rgb_display, interpolation="nearest")
    for outline in outlines:
        left.plot(outline[:, 0] - 0.5, outline[:, 1] - 0.5, color="yellow", linewidth=0.9)
    left.set_title(f"True colour, {n_landslides} landslide(s) outlined")
    left.legend(handles=[Patch(edgecolor="yellow", facecolor="none", label="mapped landslide")],
                loc="lower right", fontsize=8)
    right.imshow(grey, cmap="gray", interpolation="nearest")
    shown = np.ma.masked_less(probability[0], 0.05)
    artist = right.imshow(shown, cmap="magma", vmin=0.0, vmax=1.0, alpha=0.85,
                          interpolation="nearest")
    right.set_title("Landslide probability (< 0.05 transparent)")
    fig.colorbar(artist, ax=right, shrink=0.8, label="probability")
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
