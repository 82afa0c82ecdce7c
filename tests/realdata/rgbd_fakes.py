"""Tiny patches in the rgbd layout (R, G, B 0-255 and a DSM in metres), made in tmp_path.

They imitate the real ``rgbd-landslides`` areas closely enough for the workflow to run:
a hillside DSM at ~2,800 m, vegetated green ground, bare brown landslide scars on the
steeper part, and a nodata corner (every band 0) in some patches, as on the real footprint's
edge. Nothing here needs ``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

PATCH_PX = 32


def rgbd_patch(rng: np.random.Generator, size: int = PATCH_PX,
               nodata_corner: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One ``(size, size, 4) float32`` rgbd image (stored layout) and its ``(size, size) uint8`` mask."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    tilt = rng.uniform(0.5, 2.0, size=2)
    dsm = 2800.0 + rng.uniform(-100, 100) + tilt[0] * rows + tilt[1] * cols
    centre = rng.uniform(0.3 * size, 0.7 * size, size=2)
    radius = rng.uniform(0.15 * size, 0.3 * size)
    mask = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius**2).astype(np.uint8)
    dsm -= 3.0 * mask  # a scar is a shallow depression
    vegetation = np.stack([70.0, 110.0, 60.0])[:, None, None]
    soil = np.stack([170.0, 140.0, 110.0])[:, None, None]
    rgb = np.where(mask[None] == 1, soil, vegetation) + rng.normal(0, 12, size=(3, size, size))
    image = np.concatenate([np.clip(rgb, 0, 255), dsm[None]]).transpose(1, 2, 0)
    if nodata_corner:
        image[: size // 4, : size // 4] = 0.0
        mask[: size // 4, : size // 4] = 0
    return image.astype(np.float32), mask


def write_rgbd_split(folder: Path, n_patches: int, seed: int) -> Path:
    """``folder/img/image_<row>_<col>.h5`` and ``folder/mask/mask_<row>_<col>.h5``; returns folder."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True)
    (folder / "mask").mkdir()
    for i in range(n_patches):
        image, mask = rgbd_patch(rng, nodata_corner=i % 3 == 0)
        patch_id = f"{64 * (i // 4)}_{64 * (i % 4)}"
        with h5py.File(folder / "img" / f"image_{patch_id}.h5", "w") as f:
            f["img"] = image
        with h5py.File(folder / "mask" / f"mask_{patch_id}.h5", "w") as f:
            f["mask"] = mask
    return folder


@pytest.fixture(scope="module")
def rgbd_areas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny fake areas ``(area_A, area_B)`` in the rgbd layout: 8 and 6 patches."""
    root = tmp_path_factory.mktemp("rgbd")
    return write_rgbd_split(root / "area_A", 8, seed=1), write_rgbd_split(root / "area_B", 6, seed=2)


def tiny_overrides(area_a: Path, area_b: Path, prefix: str = "") -> list[str]:
    """``--set`` values that shrink a shipped rgbd config to seconds on the fake areas."""
    values = {
        "data.train_path": area_a, "data.val_path": area_b, "data.batch_size": 4,
        "model.options.base_channels": 4, "model.options.depth": 2,
        "trainer.max_epochs": 1, "trainer.progress": "false",
    }
    args: list[str] = []
    for key, value in values.items():
        args += ["--set", f"{prefix}{key}={value}"]
    return args
