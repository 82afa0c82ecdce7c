"""Fixtures for the Sentinel-2 input tests: one small synthetic scene in every format.

The scene is the synthetic generator's (192 px, 10 m, with its nodata corner snapped to the
60 m grid so that every resolution agrees on where the data ends), written as the
multi-band GeoTIFF of ``slidemap synth-scene`` and, from the same digital numbers, as the
products of :mod:`slidemap.data.synthetic.sentinel2`. The engine is a tiny UNet reading
every Landslide4Sense band but B10 (what an L2A product has) with NDVI and slope, and
normalisation statistics of the real Landslide4Sense patches' order (stored units ~1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from slidemap.bands import BandSet, get_band_set
from slidemap.data.normalization import ChannelStats
from slidemap.data.synthetic.sentinel2 import Scene10m
from slidemap.features import InputPipeline
from slidemap.inference.engine import TorchEngine

SIZE_PX = 192
L2A_BANDS = tuple(b for b in get_band_set("l4s14").names if b != "B10")


def write_multiband(path: Path, scene: Scene10m, names: tuple[str, ...] | None = None, *,
                    dtype: str = "uint16", values: dict[str, np.ndarray] | None = None,
                    scale: float | None = None, offset: float | None = None,
                    nodata: float | None = 0) -> Path:
    """``scene`` (or ``values``) as one multi-band GeoTIFF with band descriptions."""
    names = names or tuple(scene.bands)
    data = values or scene.bands
    height, width = scene.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=len(names),
                       dtype=dtype, crs=scene.crs, transform=scene.transform, nodata=nodata,
                       tiled=True, blockxsize=64, blockysize=64) as dst:
        for i, name in enumerate(names, start=1):
            dst.write(data[name].astype(dtype), i)
            dst.set_band_description(i, name)
        if scale is not None:
            dst.scales = (scale,) * len(names)
            dst.offsets = ((offset or 0.0),) * len(names)
    return path


@pytest.fixture(scope="session")
def s2_scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``{"scene": Scene10m, "image": multi-band GeoTIFF, "dem": 30 m DEM, "dir": folder}``."""
    from slidemap.data.synthetic import generate_scene

    root = tmp_path_factory.mktemp("s2scene")
    paths = generate_scene(root / "synthetic", size_px=SIZE_PX, seed=3)
    scene = Scene10m.from_geotiff(paths["image"]).nodata_on_blocks(6)
    image = write_multiband(root / "image.tif", scene)
    return {"scene": scene, "image": image, "dem": paths["dem"], "dir": root}


def l4s_like_stats(pipeline: InputPipeline) -> ChannelStats:
    """Band means and spreads of Landslide4Sense's order: ~1 stored unit per band (slope and
    DEM ~1 too), 0.5 spread; features centred."""
    n = pipeline.in_channels
    mean = np.zeros(n)
    mean[: len(pipeline.band_set)] = 1.0
    return ChannelStats(pipeline.channel_names, mean, np.full(n, 0.5))


def make_engine(bands: tuple[str, ...] | None = L2A_BANDS, band_set: str | dict | BandSet = "l4s14",
                features: tuple[str, ...] = ("ndvi", "slope")) -> TorchEngine:
    from mapping_helpers import tiny_model

    pipeline = InputPipeline(band_set, features, bands=bands)
    return TorchEngine(tiny_model(pipeline.in_channels), pipeline, l4s_like_stats(pipeline), 0.5, "unet")


@pytest.fixture(scope="session")
def l2a_engine() -> TorchEngine:
    return make_engine()


def read_band(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band)


def write_engine_checkpoint(path: Path, engine: TorchEngine) -> Path:
    """A slidemap checkpoint of ``engine`` (weights, pipeline, statistics, threshold)."""
    import torch
    from mapping_helpers import MODEL

    pipeline = engine.pipeline
    torch.save({
        "state_dict": {f"model.{k}": v for k, v in engine.model.state_dict().items()},
        "slidemap": {
            "format_version": 1, "model": MODEL, "in_channels": pipeline.in_channels,
            "pipeline": pipeline.to_dict(), "normalization": engine.stats.to_dict(),
            "threshold": engine.threshold, "config": {}, "band_set": pipeline.band_set.name,
        },
    }, path)
    return path


@pytest.fixture(scope="session")
def tiny_l2a_checkpoint(l2a_engine: TorchEngine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The :func:`l2a_engine` as a checkpoint file (every l4s14 band but B10)."""
    return write_engine_checkpoint(tmp_path_factory.mktemp("l2a") / "l2a.ckpt", l2a_engine)
