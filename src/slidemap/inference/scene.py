"""A scene on disk as band stacks in a checkpoint's stored units, read window by window.

:class:`SceneReader` opens any scene input (:func:`~slidemap.io.scene_formats.open_scene_source`:
a multi-band raster, a Sentinel-2 product, a folder of per-band files, a STAC item), maps
its bands to the model's band set (:func:`~slidemap.io.scene_source.map_bands`), reads them
on the scene's grid (:class:`~slidemap.io.band_stack.BandStack`), converts raw values to
the band set's stored units (``stored = (raw × scale + offset) / physical_per_unit``), warps
an optional separate DEM onto the grid and computes a slope band from the elevation when
the band set has one the scene lacks. Nothing is read whole.

Each pixel also gets a status (:meth:`SceneReader.status`): data that can be mapped
(:data:`STATUS_ASSESSABLE`), data that cannot be judged (:data:`FLAG_NOT_ASSESSABLE`:
clouds, cloud shadows, snow, saturated or defective pixels from the L2A scene
classification, a ``--cloud-mask`` or the product's saturation value;
:data:`FLAG_NO_ELEVATION`: the DEM does not cover it), or no data at all
(:data:`STATUS_OUTSIDE`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from slidemap.bands import ELEVATION_ROLES, SENTINEL2_SCL_NOT_ASSESSABLE, BandSet
from slidemap.features.terrain import GRADIENT_HALO_PX as SLOPE_HALO_PX
from slidemap.features.terrain import elevation_gradient, slope_deg
from slidemap.io.band_stack import BandStack
from slidemap.io.geotiff import RasterInfo, dem_on_image_grid, inspect_raster, read_window
from slidemap.io.scene_formats import open_scene_source
from slidemap.io.scene_source import (
    RESAMPLING,
    BandChoice,
    SceneSource,
    SourceBand,
    map_bands,
    physical_scale_offset,
)

#: Pixel status (:meth:`SceneReader.status`): assessable data.
STATUS_ASSESSABLE = 0
#: Status bit: the scene says the ground cannot be judged (clouds, shadows, snow, saturated).
FLAG_NOT_ASSESSABLE = 1
#: Status bit: the model needs elevation and the DEM does not cover the pixel.
FLAG_NO_ELEVATION = 2
#: Pixel status: no image data (outside the swath or the tile, or nodata).
STATUS_OUTSIDE = 255

@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to open a scene again in another process (a Dask worker).

    Attributes:
        image: the scene input: a raster, a Sentinel-2 product, a folder of per-band
            files, or a STAC item (a path, or a URL as text).
        dem: an optional separate elevation raster (any CRS and resolution; band 1, metres).
        band_mapping: explicit ``{band name: 1-based band number}`` (``--bands``); empty to
            map by band names.
        cloud_mask: an optional raster whose non-zero pixels are not assessable.
    """

    image: Path | str
    dem: Path | None = None
    band_mapping: tuple[tuple[str, int], ...] = field(default=())
    cloud_mask: Path | None = None


@dataclass
class _Stack:
    """Image bands read together: where they go in the band stack and their conversion."""

    channels: list[int]
    bands: list[SourceBand]
    scale: np.ndarray  # (n, 1, 1) stored units per raw unit
    offset: np.ndarray  # (n, 1, 1) stored units
    resampling: str
    reader: BandStack | None = None


class SceneReader:
    """Reads ``(C, h, w)`` band stacks in stored units for windows of a scene.

    Use as a context manager (it holds the datasets and the warped DEM open).

    Args:
        spec: the scene.
        band_set: the checkpoint's band set (what each channel must be).

    Raises:
        InputError: naming the file, for every problem of the inputs or the band mapping.
    """

    def __init__(self, spec: SceneSpec, band_set: BandSet) -> None:
        self.spec = spec
        self.band_set = band_set
        self.source: SceneSource = open_scene_source(spec.image)
        self.info: RasterInfo = self.source.grid
        for extra in (spec.dem, spec.cloud_mask):
            if extra is not None:
                inspect_raster(extra)  # validate early, with its own file name in errors
        self.choices: tuple[BandChoice, ...] = map_bands(
            band_set, self.source, dict(spec.band_mapping), have_dem=spec.dem is not None
        )
        self._stacks = self._plan_stacks()
        self._elevation_band = next(
            (src for band, (kind, src) in zip(band_set.bands, self.choices, strict=True)
             if kind == "image" and band.role in ELEVATION_ROLES), None)
        quality = [b for b in (self.source.scene_classification, self._cloud_mask_band()) if b is not None]
        self._quality: list[SourceBand] = quality
        self._stack = contextlib.ExitStack()
        self._quality_reader: BandStack | None = None
        self._elevation_reader: BandStack | None = None
        self._dem: WarpedVRT | None = None

    def _plan_stacks(self) -> list[_Stack]:
        stacks: dict[str, _Stack] = {}
        for channel, (band, (kind, src)) in enumerate(zip(self.band_set.bands, self.choices, strict=True)):
            if kind != "image":
                continue
            assert src is not None
            resampling = "elevation" if band.role in ELEVATION_ROLES else "reflectance"
            stack = stacks.setdefault(resampling, _Stack([], [], np.zeros(0), np.zeros(0), resampling))
            scale, offset = physical_scale_offset(band, src)
            stack.channels.append(channel)
            stack.bands.append(src)
            stack.scale = np.append(stack.scale, scale / band.physical_per_unit)
            stack.offset = np.append(stack.offset, offset / band.physical_per_unit)
        for stack in stacks.values():
            stack.scale = stack.scale.astype(np.float32)[:, None, None]
            stack.offset = stack.offset.astype(np.float32)[:, None, None]
        return list(stacks.values())

    def _cloud_mask_band(self) -> SourceBand | None:
        if self.spec.cloud_mask is None:
            return None
        info = inspect_raster(self.spec.cloud_mask)
        return SourceBand(("cloud mask",), str(self.spec.cloud_mask), 1, info.dtypes[0],
                          resolution_m=float(np.mean(info.pixel_size_m)), radiometry="non-zero = not assessable")

    # -- context management -------------------------------------------------------------
    def __enter__(self) -> SceneReader:
        # Anything refused here must not leave what was opened before it open: a leaked
        # rasterio dataset owns GDAL's environment and tears it down when collected.
        label = str(self.spec.image)
        with contextlib.ExitStack() as opening:
            for stack in self._stacks:
                stack.reader = opening.enter_context(
                    BandStack(stack.bands, self.info, RESAMPLING[stack.resampling], label))
            if self._quality:
                self._quality_reader = opening.enter_context(
                    BandStack(self._quality, self.info, RESAMPLING["categorical"], label))
            if self._elevation_band is not None:
                self._elevation_reader = opening.enter_context(
                    BandStack([self._elevation_band], self.info, RESAMPLING["elevation"], label))
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
        return any(kind == "slope" for kind, _ in self.choices)

    @property
    def has_elevation(self) -> bool:
        """Whether the scene has elevation (a DEM, or an elevation band in the image)."""
        return self.spec.dem is not None or self._elevation_band is not None

    @property
    def halo_px(self) -> int:
        """Context this reader needs around a window for exact derived bands."""
        return SLOPE_HALO_PX if self.needs_elevation else 0

    def band_mapping(self) -> dict[str, Any]:
        """Where each channel was read, for ``summary.json``: the file or subdataset, band
        number, scale, offset and nodata of every band, the DEM and the quality masks."""
        channels: dict[str, Any] = {}
        for band, (kind, src) in zip(self.band_set.bands, self.choices, strict=True):
            if kind == "image":
                assert src is not None
                scale, offset = physical_scale_offset(band, src)
                channels[band.name] = {**src.describe(), "scale": scale, "offset": offset}
            elif kind == "dem":
                channels[band.name] = {"source": str(self.spec.dem), "band": 1, "radiometry": "metres"}
            else:
                channels[band.name] = {"source": "computed from the elevation (Eq. 15)"}
        quality = {b.label: b.describe() for b in self._quality}
        return {"format": self.source.kind, "channels": channels, "not_assessable_from": quality,
                "processing_level": self.source.processing_level or None,
                "processing_baseline": self.source.processing_baseline or None,
                "notes": list(self.source.notes)}

    # -- reading ------------------------------------------------------------------------
    def elevation_m(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """``(elevation (h, w) float32 metres, valid (h, w) bool)`` from the DEM or the image."""
        if self._dem is not None:
            values, valid = read_window(self._dem, [1], window)
            return values[0], valid
        assert self._elevation_reader is not None and self._elevation_band is not None, (
            "no elevation: use SceneReader as a context manager on a scene with a DEM")
        raw, valid, _ = self._elevation_reader.read(window)
        band = self.band_set.band(*ELEVATION_ROLES)
        scale, offset = physical_scale_offset(band, self._elevation_band)
        return raw[0] * scale + offset, valid

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

    def _not_assessable(self, window: Window) -> np.ndarray:
        """``(h, w) bool``: the scene classification or the cloud mask rules the pixel out."""
        flagged = np.zeros((int(window.height), int(window.width)), dtype=bool)
        if self._quality_reader is None:
            return flagged
        values, _, _ = self._quality_reader.read(window)
        for band, layer in zip(self._quality, values, strict=True):
            if band is self.source.scene_classification:
                flagged |= np.isin(layer, list(SENTINEL2_SCL_NOT_ASSESSABLE))
            else:  # a cloud mask: non-zero is not assessable; outside its extent is not flagged
                flagged |= np.isfinite(layer) & (layer != 0)
        return flagged

    def read_with_status(self, window: Window, *, with_bands: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
        """The band stack of ``window`` (inside the scene) in stored units, and each pixel's status.

        Returns:
            ``(bands (C, h, w) float32, status (h, w) uint8)``: status is
            :data:`STATUS_ASSESSABLE`, a combination of :data:`FLAG_NOT_ASSESSABLE` and
            :data:`FLAG_NO_ELEVATION`, or :data:`STATUS_OUTSIDE`; bands hold NaN wherever
            the status is not :data:`STATUS_ASSESSABLE`. With ``with_bands=False`` the
            status alone (``bands`` is ``None``): the same reads, no scaling or copies.
        """
        shape = (int(window.height), int(window.width))
        bands = np.full((len(self.band_set), *shape), np.nan, np.float32) if with_bands else None
        data = np.ones(shape, dtype=bool)
        flagged = self._not_assessable(window)
        for stack in self._stacks:
            assert stack.reader is not None, "use SceneReader as a context manager"
            raw, valid, saturated = stack.reader.read(window)
            if bands is not None:
                bands[stack.channels] = raw * stack.scale + stack.offset
            data &= valid
            flagged |= saturated
        elevation = np.ones(shape, dtype=bool)
        for i, (kind, _) in enumerate(self.choices):
            band = self.band_set.bands[i]
            if kind == "dem":
                values, valid = self.elevation_m(window)
            elif kind == "slope":
                values, valid = self.slope_deg(window)
            else:
                continue
            if bands is not None:
                bands[i] = values / band.physical_per_unit
            if self._dem is not None:
                elevation &= valid
            else:  # elevation from the image: its nodata is the image's
                data &= valid
        status = np.where(flagged, FLAG_NOT_ASSESSABLE, STATUS_ASSESSABLE).astype(np.uint8)
        status[~elevation] |= FLAG_NO_ELEVATION
        status[~data] = STATUS_OUTSIDE
        if bands is not None:
            bands[:, status != STATUS_ASSESSABLE] = np.nan
        return bands, status

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
            mapped band or the DEM, or not assessable) hold NaN.
        """
        bands, status = self.read_with_status(window)
        assert bands is not None
        return bands, status == STATUS_ASSESSABLE

    def status(self, window: Window) -> np.ndarray:
        """``(h, w) uint8`` status of each pixel of ``window`` (see :meth:`read_with_status`)."""
        return self.read_with_status(window, with_bands=False)[1]

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
