"""Fixtures for the data-layer tests: tiny Landslide4Sense-format files written on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import h5py
import numpy as np
import pytest

#: write_h5(path, key, array) -> path
WriteH5 = Callable[[Path, str, np.ndarray], Path]
#: make_split(folder, ids, n_bands=14, size=8, masks=True, seed=0) -> folder (img/ + mask/)
MakeSplit = Callable[..., Path]


def _write_h5(path: Path, key: str, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset(key, data=array)
    return path


def _make_split(
    folder: Path,
    ids: Iterable[str],
    n_bands: int = 14,
    size: int = 8,
    masks: bool = True,
    seed: int = 0,
) -> Path:
    """``folder/img/image_<id>.h5`` (float64, (size, size, n_bands)) and, if ``masks``,
    ``folder/mask/mask_<id>.h5`` (uint8 {0, 1}); values are random but seeded."""
    rng = np.random.default_rng(seed)
    for pid in ids:
        _write_h5(folder / "img" / f"image_{pid}.h5", "img", rng.uniform(0.1, 2.0, (size, size, n_bands)))
        if masks:
            _write_h5(folder / "mask" / f"mask_{pid}.h5", "mask", rng.integers(0, 2, (size, size), dtype=np.uint8))
    return folder


@pytest.fixture
def write_h5() -> WriteH5:
    return _write_h5


@pytest.fixture
def make_split() -> MakeSplit:
    return _make_split
