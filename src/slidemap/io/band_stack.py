"""Bands of several files read together on one grid, window by window.

:class:`BandStack` opens every dataset its :class:`~slidemap.io.scene_source.SourceBand`\\ s
come from once. A dataset already on the target grid is read directly; any other (a 20 m or
60 m band, a file in another CRS or with another extent) through a ``WarpedVRT`` onto the
target grid, so each read warps only the window asked for and nothing is ever read whole.
Values come back raw (the source's own units); the caller applies scale and offset.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from slidemap.errors import InputError
from slidemap.io.geotiff import RasterInfo, dataset_info, open_raster
from slidemap.io.scene_source import SourceBand, source_label

log = logging.getLogger(__name__)


def on_grid(ds: DatasetReader | RasterInfo, grid: RasterInfo) -> bool:
    """Whether ``ds`` has exactly ``grid``'s CRS, size and transform (to 1e-6 pixel)."""
    if (ds.width, ds.height) != (grid.width, grid.height) or ds.crs != grid.crs:
        return False
    tolerance = 1e-6 * max(abs(grid.transform.a), abs(grid.transform.e))
    return all(abs(a - b) <= tolerance for a, b in zip(ds.transform, grid.transform, strict=True))


@dataclass
class _Group:
    """Bands of one dataset that share a nodata value: one reader (the dataset or a VRT)."""

    dataset: str
    nodata: float | None
    positions: list[int]  # rows of the stack these bands fill
    indexes: list[int]  # their 1-based band numbers in the dataset
    reader: DatasetReader | WarpedVRT | None = None


class BandStack:
    """Reads ``bands`` on ``grid`` window by window. Use as a context manager.

    Args:
        bands: the source bands, in the order of the returned stack.
        grid: the target grid (CRS, transform, size).
        resampling: how bands not on ``grid`` are resampled onto it.
        label: the scene, named in errors.

    Raises:
        InputError: a dataset cannot be opened or read, or has no georeferencing.
    """

    def __init__(self, bands: Sequence[SourceBand], grid: RasterInfo, resampling: Resampling,
                 label: str = "") -> None:
        self.bands = tuple(bands)
        self.grid = grid
        self.resampling = resampling
        self.label = label or str(grid.path)
        groups: dict[tuple[str, float | None], _Group] = {}
        for position, band in enumerate(self.bands):
            key = (band.dataset, band.nodata)
            group = groups.setdefault(key, _Group(band.dataset, band.nodata, [], []))
            group.positions.append(position)
            group.indexes.append(band.index)
        self._groups = list(groups.values())
        self._saturated = [(i, b.saturated) for i, b in enumerate(self.bands) if b.saturated is not None]
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> BandStack:
        # Anything refused while opening must close what was opened before it.
        with contextlib.ExitStack() as opening:
            datasets: dict[str, DatasetReader] = {}
            for group in self._groups:
                if group.dataset not in datasets:
                    ds = opening.enter_context(open_raster(group.dataset, label=self._shown(group)))
                    dataset_info(ds, self._shown(group))  # georeferenced, real-valued
                    datasets[group.dataset] = ds
                ds = datasets[group.dataset]
                if on_grid(ds, self.grid):
                    group.reader = ds
                    continue
                group.reader = opening.enter_context(WarpedVRT(
                    ds, crs=self.grid.crs, transform=self.grid.transform, width=self.grid.width,
                    height=self.grid.height, resampling=self.resampling,
                    src_nodata=group.nodata if group.nodata is not None else ds.nodata,
                    nodata=np.nan, dtype="float32",
                ))
            self._stack = opening.pop_all()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def _shown(self, group: _Group) -> str:
        return f"{self.label} ({source_label(group.dataset)})" if group.dataset != self.label else self.label

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw values of every band in ``window`` (inside the grid).

        Returns:
            ``(values (n, h, w) float32, valid (h, w) bool, saturated (h, w) bool)``: a pixel
            is valid when every band has a value there (not nodata, masked, outside its
            file or non-finite); saturated when any band holds its saturation value.
        """
        height, width = int(window.height), int(window.width)
        values = np.empty((len(self.bands), height, width), dtype=np.float32)
        valid = np.ones((height, width), dtype=bool)
        for group in self._groups:
            assert group.reader is not None, "use BandStack as a context manager"
            try:
                raw = group.reader.read(group.indexes, window=window, out_dtype="float32")
                masks = group.reader.read_masks(group.indexes, window=window)
            except (RasterioError, OSError) as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(
                    f"cannot read pixels of window {window!r} (damaged or truncated file?): {message}",
                    self._shown(group),
                ) from None
            values[group.positions] = raw
            valid &= np.all(masks > 0, axis=0) & np.all(np.isfinite(raw), axis=0)
            if group.nodata is not None:
                valid &= np.all(raw != group.nodata, axis=0)
        saturated = np.zeros((height, width), dtype=bool)
        for position, value in self._saturated:
            saturated |= values[position] == value
        return values, valid, saturated
