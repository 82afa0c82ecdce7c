"""An L2A checkpoint: trained with ``data.bands`` (every l4s14 band but B10) on full 14-band
patches, it maps a Sentinel-2 L2A product, which has no B10, and still predicts patches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sentinel2_helpers import L2A_BANDS, read_band

from slidemap.config import experiment_from_dict
from slidemap.data.synthetic.sentinel2 import write_safe
from slidemap.models.checkpoint import load_checkpoint
from tests.trust.conftest import run_cli


@pytest.fixture(scope="module")
def l2a_run(synthetic_root, tmp_path_factory):
    from slidemap.training.run import train

    config = experiment_from_dict({
        "name": "l2a", "data": {"root": str(synthetic_root), "batch_size": 8, "bands": list(L2A_BANDS),
                                "features": ["ndvi", "ndmi", "slope", "elevation"]},
        "model": {"name": "unet", "options": {"base_channels": 8, "depth": 2}},
        "trainer": {"max_epochs": 1, "patience": 0, "seed": 1, "accelerator": "cpu", "devices": 1,
                    "progress": False},
    })
    return train(config, tmp_path_factory.mktemp("l2a") / "run")


def test_l2a_checkpoint_maps_an_l2a_product_and_full_patches(l2a_run, s2_scene, synthetic_root, tmp_path, capsys) -> None:
    loaded = load_checkpoint(l2a_run.best_checkpoint)
    assert loaded.pipeline.band_set.names == list(L2A_BANDS) and loaded.pipeline.in_channels == 13 + 4
    assert loaded.meta["pipeline"]["bands"] == list(L2A_BANDS)  # stored in the checkpoint
    product = write_safe(tmp_path, s2_scene["scene"], level="L2A", baseline="05.09")
    assert not list(product.rglob("*_B10_*"))  # an L2A product has no B10
    out = tmp_path / "map"
    result = run_cli(capsys, ["predict", "--checkpoint", l2a_run.best_checkpoint, product, "--dem", s2_scene["dem"],
                              "--out", out, "--window", "128", "--overlap", "32"])
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["inputs"]["bands"]["channels"]) == set(L2A_BANDS)
    assert np.isfinite(read_band(out / "probability.tif")).mean() > 0.8
    patches = tmp_path / "patches"
    result = run_cli(capsys, ["predict", "--checkpoint", l2a_run.best_checkpoint, synthetic_root,
                              "--split", "test", "--out", patches])
    assert result.code == 0, result.err
    assert len(list(patches.glob("mask_*.h5"))) == len(list((synthetic_root / "TestData" / "img").glob("*.h5")))
