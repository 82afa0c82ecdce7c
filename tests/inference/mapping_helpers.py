"""Helpers and fixtures for mapping tests: a tiny band set, model, checkpoint and GeoTIFF scenes.

Imported by ``tests/inference/conftest.py`` and by ``tests/io`` tests (``sys.path`` insert:
test folders are not packages).

Scenes are small (≤ 160 px) and the model is a depth-2, 4-channel UNet, so every test runs
in well under a second of model time on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from slidemap.bands import BandSet
from slidemap.data.normalization import ChannelStats
from slidemap.features import InputPipeline
from slidemap.inference.engine import TorchEngine
from slidemap.models import build_model

#: Four bands: red and NIR in the image (reflectance × 10000, uint16), slope and DEM from a DEM.
TINY_BANDS: dict = {
    "name": "tiny4",
    "pixel_size_m": 10.0,
    "bands": [
        {"name": "B4", "role": "red", "physical_per_unit": 0.08, "unit": "reflectance", "aliases": ["B04"]},
        {"name": "B8", "role": "nir", "physical_per_unit": 0.21, "unit": "reflectance", "aliases": ["B08"]},
        {"name": "slope", "role": "slope", "physical_per_unit": 20.0, "unit": "deg"},
        {"name": "DEM", "role": "dem", "physical_per_unit": 1000.0, "unit": "m"},
    ],
}
MODEL = {"name": "unet", "options": {"base_channels": 4, "depth": 2, "norm": "batch"}}
UTM = "EPSG:32633"
ORIGIN = (500_000.0, 4_200_000.0)


def tiny_pipeline() -> InputPipeline:
    return InputPipeline(BandSet.from_dict(TINY_BANDS), features=("ndvi", "slope"), pixel_size_m=10.0)


def tiny_stats(pipeline: InputPipeline) -> ChannelStats:
    n = pipeline.in_channels
    return ChannelStats(pipeline.channel_names, np.full(n, 0.5), np.full(n, 2.0))


def tiny_model(in_channels: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(MODEL["name"], in_channels, **MODEL["options"])
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_engine() -> TorchEngine:
    pipeline = tiny_pipeline()
    return TorchEngine(tiny_model(pipeline.in_channels), pipeline, tiny_stats(pipeline), 0.5, "unet")


def write_checkpoint(path: Path, threshold: float = 0.5, *, seed: int = 0,
                     pipeline: InputPipeline | None = None, stats: ChannelStats | None = None) -> Path:
    """A slidemap checkpoint in the format :func:`slidemap.io.checkpoint.load_checkpoint` reads
    (the tiny model, pipeline and statistics unless given; ``seed`` draws other weights)."""
    pipeline = pipeline or tiny_pipeline()
    model = tiny_model(pipeline.in_channels, seed)
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "slidemap": {
                "format_version": 1,
                "model": MODEL,
                "in_channels": pipeline.in_channels,
                "pipeline": pipeline.to_dict(),
                "normalization": (stats or tiny_stats(pipeline)).to_dict(),
                "threshold": threshold,
                "config": {},
                "band_set": "tiny4",
            },
        },
        path,
    )
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def write_raster(path: Path, array: np.ndarray, *, crs: str = UTM, res: float = 10.0,
                 origin: tuple[float, float] = ORIGIN, nodata: float | None = None,
                 descriptions: tuple[str, ...] | None = None) -> Path:
    """Write ``(C, H, W)`` or ``(H, W)`` as a GeoTIFF."""
    data = array[None] if array.ndim == 2 else array
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype, crs=crs, transform=from_origin(*origin, res, res), nodata=nodata,
    ) as dst:
        dst.write(data)
        for i, text in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, text)
    return path


def smooth_field(shape: tuple[int, int], seed: int, scale: float = 8.0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=shape), scale)
    return (field - field.min()) / (np.ptp(field) + 1e-12)


SceneMaker = Callable[..., dict[str, Path]]


@pytest.fixture
def make_scene(tmp_path: Path) -> SceneMaker:
    """``make_scene(size=96, nodata_box=None) -> {"image", "dem"}``: a red/NIR uint16 image
    (band descriptions B4, B8, nodata 0) and a 30 m DEM in the same CRS covering it."""

    def make(size: int = 96, nodata_box: tuple[slice, slice] | None = None, seed: int = 1) -> dict[str, Path]:
        shape = (size, size)
        red = 150 + 2500 * smooth_field(shape, seed)  # 0.015-0.265: dark vegetation to bright soil
        nir = 3000 - 2000 * smooth_field(shape, seed + 1)
        image = np.stack([red, nir]).astype(np.uint16)
        if nodata_box is not None:
            image[:, nodata_box[0], nodata_box[1]] = 0
        image_path = write_raster(tmp_path / "image.tif", image, nodata=0, descriptions=("B4", "B8"))
        dem_size = size // 3 + 4
        dem = (800 + 400 * smooth_field((dem_size, dem_size), seed + 2, 3.0)).astype(np.float32)
        dem_path = write_raster(tmp_path / "dem.tif", dem, res=30.0,
                                origin=(ORIGIN[0] - 30, ORIGIN[1] + 30), nodata=-9999.0)
        return {"image": image_path, "dem": dem_path}

    return make
