"""A scene on disk as band stacks in a checkpoint's stored units, read window by window.

:class:`SceneReader` opens a GeoTIFF image (and optionally a separate DEM, warped onto the
image grid per window), maps its bands to a band set (:func:`~slidemap.io.geotiff.map_bands`),
converts raw values to the band set's stored units
(``stored = raw * physical_per_raw / physical_per_unit``) and computes a slope band from the
elevation when the band set has one the image lacks. Nothing is read whole.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from slidemap.bands import ELEVATION_ROLES, BandSet
from slidemap.features.terrain import GRADIENT_HALO_PX as SLOPE_HALO_PX
from slidemap.features.terrain import elevation_gradient, slope_deg
from slidemap.io.geotiff import (
    BandSource,
    RasterInfo,
    dem_on_image_grid,
    inspect_raster,
    map_bands,
    open_raster,
    physical_per_raw,
    read_window,
)


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to open a scene again in another process (a Dask worker).

    Attributes:
        image: the multi-band GeoTIFF.
        dem: an optional separate elevation GeoTIFF (any CRS and resolution; band 1, metres).
        band_mapping: explicit ``{band name: 1-based raster band}`` (``--bands``); empty to
            map by band descriptions.
    """

    image: Path
    dem: Path | None = None
    band_mapping: tuple[tuple[str, int], ...] = field(default=())


class SceneReader:
    """Reads ``(C, h, w)`` band stacks in stored units for windows of a scene.

    Use as a context manager (it holds the image and the warped DEM open).

    Args:
        spec: the scene.
        band_set: the checkpoint's band set (what each channel must be).

    Raises:
        InputError: naming the file, for every problem of the image, the DEM or the mapping.
    """

    def __init__(self, spec: SceneSpec, band_set: BandSet) -> None:
        self.spec = spec
        self.band_set = band_set
        self.info: RasterInfo = inspect_raster(spec.image)
        if spec.dem is not None:
            inspect_raster(spec.dem)  # validate early, with its own file name in errors
        self.sources: tuple[BandSource, ...] = map_bands(
            band_set, self.info, dict(spec.band_mapping), have_dem=spec.dem is not None
        )
        self._image_bands = [n for kind, n in self.sources if kind == "image" and n is not None]
        self._factors = np.asarray(
            [
                physical_per_raw(band, self.info, n) / band.physical_per_unit
                for band, (kind, n) in zip(band_set.bands, self.sources, strict=True)
                if kind == "image" and n is not None
            ],
            dtype=np.float32,
        )[:, None, None]
        self._stack = contextlib.ExitStack()
        self._image: DatasetReader | None = None
        self._dem: WarpedVRT | None = None

    # -- context management -------------------------------------------------------------
    def __enter__(self) -> SceneReader:
        # A DEM refused here must not leave the image open: a leaked rasterio dataset owns
        # GDAL's environment and tears it down whenever it is garbage-collected.
        with contextlib.ExitStack() as opening:
            self._image = opening.enter_context(open_raster(self.info.path))
            if self.spec.dem is not None:
                self._dem = opening.enter_context(dem_on_image_grid(self.spec.dem, self.info))
            self._stack = opening.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @property
    def height(self) -> int:
        return self.info.height

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def needs_elevation(self) -> bool:
        """Whether a slope band is derived from elevation (and a 1-pixel halo is needed)."""
        return any(kind == "slope" for kind, _ in self.sources)

    @property
    def halo_px(self) -> int:
        """Context this reader needs around a window for exact derived bands."""
        return SLOPE_HALO_PX if self.needs_elevation else 0

    # -- reading ------------------------------------------------------------------------
    def elevation_m(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """``(elevation (h, w) float32 metres, valid (h, w) bool)`` from the DEM or the image."""
        if self._dem is not None:
            values, valid = read_window(self._dem, [1], window)
            return values[0], valid
        assert self._image is not None, "use SceneReader as a context manager"
        index = self.band_set.index(*ELEVATION_ROLES, needed_by="slope")
        kind, number = self.sources[index]
        assert kind == "image" and number is not None
        values, valid = read_window(self._image, [number], window)
        band = self.band_set.bands[index]
        return values[0] * physical_per_raw(band, self.info, number), valid

    def slope_deg(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Slope in degrees (Eq. 15) at the image's pixel size, exact at the window edges.

        Reads ``window`` with a :data:`SLOPE_HALO_PX` halo (clipped to the scene, so scene
        edges use one-sided differences as a whole-scene computation would).

        Returns:
            ``(slope (h, w) float32 degrees, valid (h, w) bool)``.
        """
        padded, (top, left) = self._grow(window, SLOPE_HALO_PX)
        elevation, valid = self.elevation_m(padded)
        slope = slope_deg(np.where(valid, elevation, np.nan), float(np.mean(self.info.pixel_size_m)))
        rows = slice(top, top + window.height)
        cols = slice(left, left + window.width)
        slope, valid = slope[rows, cols], valid[rows, cols]
        return np.where(np.isfinite(slope), slope, 0.0).astype(np.float32), valid & np.isfinite(slope)

    def elevation_gradient_px(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Elevation and its change per pixel step, exact at the window edges (read with a
        :data:`SLOPE_HALO_PX` halo, like :meth:`slope_deg`).

        Returns:
            ``(elevation (h, w) m, dz/dcol (h, w) m per column, dz/drow (h, w) m per row)``,
            float64, NaN where the elevation is unknown or a derivative needs an unknown
            neighbour (central differences skip the pixel itself: its own NaN is applied).
        """
        padded, (top, left) = self._grow(window, SLOPE_HALO_PX)
        elevation, valid = self.elevation_m(padded)
        elevation = np.where(valid, elevation, np.nan).astype(np.float64)
        dz_dcol, dz_drow = (np.where(valid, d, np.nan) for d in elevation_gradient(elevation, 1.0))
        rows = slice(top, top + window.height)
        cols = slice(left, left + window.width)
        return elevation[rows, cols], dz_dcol[rows, cols], dz_drow[rows, cols]

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """The band stack of ``window`` (inside the scene) in the band set's stored units.

        Returns:
            ``(bands (C, h, w) float32, valid (h, w) bool)``; invalid pixels (nodata in any
            mapped band or the DEM) hold NaN.
        """
        assert self._image is not None, "use SceneReader as a context manager"
        bands = np.full((len(self.band_set), int(window.height), int(window.width)), np.nan, np.float32)
        valid = np.ones((int(window.height), int(window.width)), dtype=bool)
        if self._image_bands:
            raw, valid_image = read_window(self._image, self._image_bands, window)
            image_channels = [i for i, (kind, _) in enumerate(self.sources) if kind == "image"]
            bands[image_channels] = raw * self._factors
            valid &= valid_image
        for i, (kind, _) in enumerate(self.sources):
            band = self.band_set.bands[i]
            if kind == "dem":
                elevation, valid_dem = self.elevation_m(window)
                bands[i] = elevation / band.physical_per_unit
                valid &= valid_dem
            elif kind == "slope":
                slope, valid_slope = self.slope_deg(window)
                bands[i] = slope / band.physical_per_unit
                valid &= valid_slope
        bands[:, ~valid] = np.nan
        return bands, valid

    def _grow(self, window: Window, halo: int) -> tuple[Window, tuple[int, int]]:
        """``window`` grown by ``halo`` on each side, clipped to the scene, and the offset of
        the original window inside the grown one."""
        row0 = max(0, int(window.row_off) - halo)
        col0 = max(0, int(window.col_off) - halo)
        row1 = min(self.height, int(window.row_off + window.height) + halo)
        col1 = min(self.width, int(window.col_off + window.width) + halo)
        grown = Window(col0, row0, col1 - col0, row1 - row0)
        return grown, (int(window.row_off) - row0, int(window.col_off) - col0)

    def read_with_halo(self, window: Window, halo: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """:meth:`read` of ``window`` grown by ``halo`` (clipped to the scene).

        Returns:
            ``(bands, valid, (top, left))`` where ``(top, left)`` is the offset of ``window``
            inside the returned arrays.
        """
        grown, offset = self._grow(window, halo)
        bands, valid = self.read(grown)
        return bands, valid, offset
