"""Several areas in one split: area-qualified ids, pooled statistics, and the spatial block
split that validates inside the training areas without sharing a pixel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from slidemap.config import (
    AugmentationConfig,
    CropAugment,
    ElevationAugment,
    HoldoutConfig,
    PhotometricAugment,
)
from slidemap.data.datamodule import L4SDataModule
from slidemap.data.holdout import spatial_block_split
from slidemap.data.l4s import area_names, find_area_patches, find_patches, grid_position
from slidemap.data.normalization import compute_channel_stats
from slidemap.errors import ConfigError, InputError
from slidemap.features.pipeline import InputPipeline

GRID_IDS = [f"{r}_{c}" for r in range(0, 512, 64) for c in range(0, 512, 64)]  # 8 x 8 patches


def test_grid_positions_are_read_from_area_qualified_ids() -> None:
    assert grid_position("area_A/1024_1152") == ("area_A", 1024, 1152)
    assert grid_position("1024_1152") == ("", 1024, 1152)
    assert grid_position("17") is None
    assert grid_position("area_A/17") is None


def test_two_areas_with_the_same_ids_stay_distinct(tmp_path: Path, make_split) -> None:
    a = make_split(tmp_path / "area_A", ["0_0", "0_64"], seed=1)
    b = make_split(tmp_path / "area_B", ["0_0", "64_0", "64_64"], seed=2)
    refs = find_area_patches([a, b])
    assert [r.id for r in refs] == ["area_A/0_0", "area_A/0_64", "area_B/0_0", "area_B/64_0", "area_B/64_64"]
    assert refs[2].image == b / "img" / "image_0_0.h5"
    assert [r.id for r in find_area_patches([a])] == ["0_0", "0_64"]  # one folder: plain ids
    with pytest.raises(InputError, match="given twice"):
        find_area_patches([a, tmp_path / "area_A"])


def test_area_names_use_parents_when_folder_names_repeat(tmp_path: Path) -> None:
    assert area_names([tmp_path / "x" / "area_A", tmp_path / "y" / "area_A"]) == ["x-area_A", "y-area_A"]
    assert area_names([tmp_path / "area_A", tmp_path / "area_B"]) == ["area_A", "area_B"]


def test_statistics_and_sampling_cover_every_training_area(tmp_path: Path, make_split) -> None:
    a = make_split(tmp_path / "area_A", ["0_0", "0_64"], seed=1)
    b = make_split(tmp_path / "area_B", ["0_0", "64_0", "64_64"], seed=2)
    pipeline = InputPipeline("l4s14", ["ndvi"])
    module = L4SDataModule(None, pipeline, batch_size=2, train_path=[a, b], val_path=b)
    module.setup("fit")
    train = module._dataset("train")
    assert len(train) == 5
    expected = compute_channel_stats((pipeline(image) for image in _images([a, b])), pipeline.channel_names)
    np.testing.assert_allclose(module.stats.mean, expected.mean, rtol=1e-6)
    np.testing.assert_allclose(module.stats.std, expected.std, rtol=1e-6)
    seen = {i for batch in module.train_dataloader() for i in batch["id"]}
    assert seen == {r.id for r in find_area_patches([a, b])}


def _images(folders: list[Path]):
    from slidemap.data.l4s import read_image

    for folder in folders:
        for ref in find_patches(folder):
            yield read_image(ref.image, n_bands=14)


def _overlap(a: tuple[int, int], b: tuple[int, int], size: int) -> bool:
    return abs(a[0] - b[0]) < size and abs(a[1] - b[1]) < size


def test_block_split_never_trains_on_a_validation_pixel(tmp_path: Path) -> None:
    from slidemap.data.l4s import PatchRef

    refs = [PatchRef(f"{area}/{pid}", tmp_path / f"{area}{pid}.h5", None)
            for area in ("area_A", "area_B") for pid in GRID_IDS]
    train, valid = spatial_block_split(refs, fraction=0.25, block_px=128, seed=3, patch_px=128)
    assert train and valid
    for area in ("area_A", "area_B"):  # every area gives validation blocks
        assert any(r.id.startswith(area) for r in valid)
    positions = {r.id: grid_position(r.id) for r in refs}
    for t in train:
        for v in valid:
            ta, va = positions[t.id], positions[v.id]
            assert ta[0] != va[0] or not _overlap(ta[1:], va[1:], 128), (t.id, v.id)
    assert not {r.id for r in train} & {r.id for r in valid}
    again = spatial_block_split(refs, fraction=0.25, block_px=128, seed=3, patch_px=128)
    assert [r.id for r in again[1]] == [r.id for r in valid]
    other = spatial_block_split(refs, fraction=0.25, block_px=128, seed=4, patch_px=128)
    assert [r.id for r in other[1]] != [r.id for r in valid]
    # 16 blocks of 128 px per area, a quarter held out: 4 blocks of 4 patches each
    assert len(valid) == 2 * 4 * 4


def test_block_split_refuses_ids_without_a_position(tmp_path: Path) -> None:
    from slidemap.data.l4s import PatchRef

    refs = [PatchRef("17", tmp_path / "image_17.h5", None)]
    with pytest.raises(ConfigError, match="row>_<col"):
        spatial_block_split(refs, fraction=0.5, block_px=128, patch_px=128)


def test_datamodule_validates_on_held_out_blocks_when_no_validation_path(tmp_path: Path, make_split) -> None:
    a = make_split(tmp_path / "area_A", GRID_IDS[:16], size=8, seed=1)
    b = make_split(tmp_path / "area_B", GRID_IDS[:16], size=8, seed=2)
    pipeline = InputPipeline("l4s14", [])
    module = L4SDataModule(None, pipeline, train_path=[a, b], holdout=HoldoutConfig(0.3, 128, 0))
    assert module.has_split("valid") and module.uses_holdout()
    train, valid = module.refs("train"), module.refs("valid")
    assert valid and not {r.id for r in train} & {r.id for r in valid}
    without = L4SDataModule(None, pipeline, train_path=[a, b])
    assert not without.has_split("valid")


def test_augmented_samples_depend_on_seed_epoch_and_index_only(tmp_path: Path) -> None:
    """What exact resume needs: a fresh dataset gives the same augmented sample for the same
    (seed, epoch, index), whatever was drawn before."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realdata"))
    from rgbd_fakes import write_rgbd_split

    folder = write_rgbd_split(tmp_path / "area", 4, seed=0)
    augmentation = AugmentationConfig(
        photometric=PhotometricAugment(1.0, 0.2, 0.2, 0.2, 0.2, 0.05, 0.5, 1.0, 0.02),
        elevation=ElevationAugment(1.0, 0.3, 5.0), crop=CropAugment(1.0, 0.6, 1.25))
    pipeline = InputPipeline("rgbd", ["exg", "slope"], elevation="relative")

    def dataset():
        module = L4SDataModule(None, pipeline, train_path=folder, augmentation=augmentation, seed=7)
        module.setup("fit")
        return module._dataset("train")

    first, second = dataset(), dataset()
    _ = [first[(i, 0)] for i in range(4)]  # draws in another order first
    for key in [(2, 1), (0, 1), (2, 3)]:
        np.testing.assert_array_equal(first[key]["image"].numpy(), second[key]["image"].numpy())
        np.testing.assert_array_equal(first[key]["mask"].numpy(), second[key]["mask"].numpy())
    assert not np.array_equal(first[(2, 1)]["image"].numpy(), first[(2, 2)]["image"].numpy())
    plain = L4SDataModule(None, pipeline, train_path=folder, seed=7)
    plain.setup("fit")
    jittered, unjittered = first[(1, 0)]["image"].numpy(), plain._dataset("train")[(1, 0)]["image"].numpy()
    assert not np.allclose(jittered, unjittered)


def test_augment_false_switches_every_augmentation_off(tmp_path: Path, make_split) -> None:
    folder = make_split(tmp_path / "area", ["0_0", "0_64"], size=8)
    augmentation = AugmentationConfig(photometric=replace(PhotometricAugment(), probability=1.0,
                                                          brightness=0.5))
    module = L4SDataModule(None, InputPipeline("l4s14", []), train_path=folder, augment=False,
                           augmentation=augmentation)
    module.setup("fit")
    train = module._dataset("train")
    assert train.band_jitter is None and train.crop is None
    np.testing.assert_array_equal(train[(0, 0)]["image"].numpy(), train[(0, 5)]["image"].numpy())
