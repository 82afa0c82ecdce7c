"""Cloud-Optimized GeoTIFF output: written block by block, published as a COG with overviews.

A scene's rasters are produced strip by strip, which the COG layout (overviews before the
full-resolution tiles, all in one file) cannot be written in. So :class:`CogWriter` writes a
tiled GeoTIFF under a scratch name first, then GDAL's ``COG`` driver copies it to a
temporary name next to the final file (computing the internal overviews on the way), and
that is renamed onto the final name (:func:`~slidemap.io.atomic.atomic_path`). The scratch
file is removed in every case. The scratch is uncompressed (it is read once, by the copy), so
while a raster is published it takes its uncompressed size of disk in addition (480 MB for
the probability of a 10980 px Sentinel-2 tile, 120 MB for its mask).

What differs between rasters is a :class:`RasterLayer`: data type, nodata, description,
overview resampling and, for categorical rasters, the classes with their names and colours
(a colour table inside the file; GDAL category names in the ``<file>.aux.xml`` sidecar,
because a TIFF cannot hold them, and as ``CATEGORY_<value>`` band metadata inside it).
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from slidemap.errors import OutputError
from slidemap.io.atomic import atomic_path, describe_os_error, temporary_path, write_text_atomic
from slidemap.io.geotiff import BLOCK_PX, RasterInfo, gdal_failures_raised, output_profile
from slidemap.io.outputs import PAM_SIDECAR

#: Suffix of GDAL's sidecar for what a format cannot store (here: category names).
PAM_SUFFIX = PAM_SIDECAR


@dataclass(frozen=True)
class Category:
    """One class of a categorical raster.

    Attributes:
        value: the pixel value (0-255).
        name: what the value means, shown by GIS software as the legend label.
        rgba: display colour, 0-255 per channel (alpha 0 = transparent).
    """

    value: int
    name: str
    rgba: tuple[int, int, int, int]


@dataclass(frozen=True)
class RasterLayer:
    """How one output raster is stored.

    Attributes:
        dtype: numpy dtype name of the pixels.
        nodata: the nodata value (NaN for float rasters).
        description: band description.
        overview_resampling: how overview pixels summarise the pixels they cover:
            ``average`` for continuous values (probabilities), ``mode`` or ``nearest`` for
            classes (an average of classes is no class).
        categories: the classes of a categorical raster (empty for continuous ones).
    """

    dtype: str
    nodata: float | int
    description: str
    overview_resampling: Resampling = Resampling.average
    categories: tuple[Category, ...] = ()

    def __post_init__(self) -> None:
        if self.categories and np.dtype(self.dtype) != np.uint8:
            raise ValueError(f"a colour table needs uint8 pixels, not {self.dtype}")
        values = [c.value for c in self.categories]
        if len(set(values)) != len(values) or not all(0 <= v <= 255 for v in values):
            raise ValueError(f"category values must be distinct and in 0..255, got {values}")


def cog_options(layer: RasterLayer) -> dict[str, str]:
    """Creation options of GDAL's COG driver for ``layer``: DEFLATE with the predictor that
    suits the data type, ``BLOCK_PX`` tiles, overviews down to one tile, BigTIFF when needed."""
    return {
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "YES",  # horizontal differencing for integers, floating-point for floats
        "BLOCKSIZE": str(BLOCK_PX),
        "OVERVIEW_RESAMPLING": layer.overview_resampling.name.upper(),
        "BIGTIFF": "IF_SAFER",
    }


def category_names_xml(categories: Sequence[Category]) -> str:
    """GDAL's PAM sidecar text declaring band 1's category names (indexed by pixel value)."""
    names = [""] * (max(c.value for c in categories) + 1)
    for category in categories:
        names[category.value] = category.name
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    element = ET.SubElement(band, "CategoryNames")
    for name in names:
        ET.SubElement(element, "Category").text = name
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _scratch_path(final: Path) -> Path:
    """A unique scratch name beside ``final``, carrying this process's id (cleaned like every
    slidemap temporary once its process is gone)."""
    return temporary_path(final.with_name(f"scratch-{final.stem}.tif"))


class CogWriter:
    """Write a single-band raster block by block; on a clean exit it appears under ``path``
    as a Cloud-Optimized GeoTIFF with internal overviews (see the module docstring).

    Example::

        with CogWriter(out / "probability.tif", info, PROBABILITY) as writer:
            writer.write(block, row_off=0, col_off=0)
    """

    def __init__(self, path: str | Path, info: RasterInfo, layer: RasterLayer) -> None:
        self.path = Path(path)
        self.layer = layer
        # the scratch is read once, by the COG copy: uncompressed, it costs a tenth of the
        # time of a DEFLATE write (benchmarks/cog.py), for 4 bytes a pixel of transient disk
        self._profile = {**output_profile(info, layer.dtype, layer.nodata), "compress": "none"}
        self._profile.pop("predictor", None)
        self._scratch: Path | None = None
        self._dataset: DatasetWriter | None = None

    def __enter__(self) -> CogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._scratch = _scratch_path(self.path)
        try:
            with self._failing_as_output():
                self._dataset = rasterio.open(self._scratch, "w", **self._profile)
                if self.layer.description:
                    self._dataset.set_band_description(1, self.layer.description)
                if self.layer.categories:
                    self._dataset.write_colormap(1, {c.value: c.rgba for c in self.layer.categories})
                    self._dataset.update_tags(
                        1, **{f"CATEGORY_{c.value}": c.name for c in self.layer.categories})
        except BaseException:
            self._discard()
            raise
        return self

    @contextlib.contextmanager
    def _failing_as_output(self) -> Iterator[None]:
        """GDAL failures on the scratch (a full disk, even one GDAL only prints while
        flushing) as one :class:`~slidemap.errors.OutputError` naming the output."""
        try:
            with gdal_failures_raised():
                yield
        except OSError as exc:
            raise OutputError(f"cannot write ({describe_os_error(exc, self.path.parent)})",
                              self.path) from None

    def write(self, block: np.ndarray, row_off: int, col_off: int = 0) -> None:
        """Write ``block (h, w)`` with its top-left pixel at ``(row_off, col_off)``."""
        assert self._dataset is not None, "use CogWriter as a context manager"
        height, width = block.shape
        window = Window(col_off, row_off, width, height)
        with self._failing_as_output():
            self._dataset.write(block.astype(self.layer.dtype, copy=False), 1, window=window)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            assert self._dataset is not None
            if exc_type is None:
                with self._failing_as_output():
                    self._dataset.close()
                self._publish()
        finally:
            self._discard()

    def _publish(self) -> None:
        assert self._scratch is not None
        if self.layer.categories:  # before the raster: a final file never lacks its names
            write_text_atomic(self.path.with_name(self.path.name + PAM_SUFFIX),
                              category_names_xml(self.layer.categories))
        with atomic_path(self.path) as tmp, gdal_failures_raised():
            rasterio.shutil.copy(self._scratch, tmp, driver="COG", **cog_options(self.layer))

    def _discard(self) -> None:
        if self._dataset is not None and not self._dataset.closed:
            self._dataset.close()
        if self._scratch is not None:
            with contextlib.suppress(FileNotFoundError):
                self._scratch.unlink()
            self._scratch = None


def write_cog(path: str | Path, array: np.ndarray, info: RasterInfo, layer: RasterLayer) -> Path:
    """Write a whole ``(H, W)`` array on ``info``'s grid as a COG (small rasters, tests)."""
    with CogWriter(path, info, layer) as writer:
        writer.write(array, 0, 0)
    return Path(path)
