"""Checks on ../shared/data (skipped when it is absent): real rgbd areas, real L4S patches."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from slidemap.cli import main
from slidemap.data.l4s import find_patches, read_patch
from slidemap.features import InputPipeline


def test_real_rgbd_areas_read_and_give_finite_relative_input(shared_data: Path) -> None:
    pipeline = InputPipeline("rgbd", ["exg", "vari", "slope", "relief", "hillshade"],
                             elevation="relative")
    for area, count in (("area_A", 152), ("area_B", 226)):
        refs = find_patches(shared_data / "rgbd-landslides" / area)
        assert len(refs) == count
        image, mask = read_patch(refs[0], n_bands=4)
        assert image.shape == (4, 128, 128) and set(np.unique(mask)) <= {0, 1}
        out = pipeline(image)
        assert np.isfinite(out).all()
        assert float(np.abs(out[3]).max()) < 500  # metres around the patch, not ~2,800 m


def test_synthetic_trained_model_predicts_official_masks_on_real_l4s_patches(
    shared_data: Path, tiny_run, tmp_path: Path
) -> None:
    real = shared_data / "l4s-real-unlabelled"
    assert main(["predict", "--checkpoint", str(tiny_run.best_checkpoint), str(real),
                 "--out", str(tmp_path)]) == 0
    images = sorted(real.glob("image_*.h5"))
    for image in images:
        with h5py.File(tmp_path / image.name.replace("image_", "mask_")) as f:
            mask = f["mask"][()]
        assert mask.dtype == np.uint8 and mask.shape == (128, 128)
        assert set(np.unique(mask)) <= {0, 1}
