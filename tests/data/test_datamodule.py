"""PatchDataset and L4SDataModule: shapes, normalisation, caching, determinism, given stats."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from slidemap.data.datamodule import L4SDataModule, PatchDataset
from slidemap.data.l4s import find_patches
from slidemap.data.normalization import ChannelStats
from slidemap.errors import ConfigError, InputError
from slidemap.features import InputPipeline

SIZE = 16


@pytest.fixture
def root(tmp_path: Path, make_split) -> Path:
    make_split(tmp_path / "TrainData", [str(i) for i in range(6)], size=SIZE, seed=1)
    make_split(tmp_path / "ValidData", ["10", "11"], size=SIZE, seed=2)
    make_split(tmp_path / "TestData", ["20", "21", "22"], size=SIZE, seed=3)
    return tmp_path


@pytest.fixture
def pipeline() -> InputPipeline:
    return InputPipeline("l4s14", ["ndvi", "slope"])


def first_batch(loader: torch.utils.data.DataLoader) -> dict:
    return next(iter(loader))


def test_train_batches_are_shaped_and_typed(root: Path, pipeline: InputPipeline) -> None:
    dm = L4SDataModule(root, pipeline, batch_size=4)
    dm.setup("fit")
    batch = first_batch(dm.train_dataloader())
    assert batch["image"].shape == (4, 16, SIZE, SIZE) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, SIZE, SIZE) and batch["mask"].dtype == torch.int64
    assert set(batch["mask"].unique().tolist()) <= {0, 1}
    assert len(batch["id"]) == 4 and all(isinstance(i, str) for i in batch["id"])
    assert dm.stats is not None and dm.stats.names == pipeline.channel_names
    assert len(dm.val_dataloader().dataset) == 2


def test_training_split_is_normalised_to_zero_mean_unit_std(root: Path, pipeline: InputPipeline) -> None:
    dm = L4SDataModule(root, pipeline, augment=False)
    dm.setup("fit")
    train = PatchDataset(find_patches(root, "train"), pipeline, stats=dm.stats)
    pixels = torch.cat([train[i]["image"].reshape(16, -1) for i in range(len(train))], dim=1).double()
    np.testing.assert_allclose(pixels.mean(dim=1).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(pixels.std(dim=1, unbiased=False).numpy(), 1.0, atol=1e-4)


def test_same_seed_gives_the_same_batches(root: Path, pipeline: InputPipeline) -> None:
    def batches(seed: int) -> list[torch.Tensor]:
        dm = L4SDataModule(root, pipeline, batch_size=2, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        return [b["image"] for _ in range(2) for b in loader]  # two epochs

    first, again, other = batches(0), batches(0), batches(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_augmentation_keeps_image_and_mask_aligned(tmp_path: Path, write_h5) -> None:
    # the NIR band carries the mask, so an aligned pair has NIR == mask everywhere
    rng = np.random.default_rng(0)
    for i in range(4):
        mask = rng.integers(0, 2, (SIZE, SIZE), dtype=np.uint8)
        image = np.ones((SIZE, SIZE, 14))
        image[:, :, 7] = mask
        write_h5(tmp_path / "img" / f"image_{i}.h5", "img", image)
        write_h5(tmp_path / "mask" / f"mask_{i}.h5", "mask", mask)
    dataset = PatchDataset(find_patches(tmp_path), InputPipeline("l4s14"), augment=True, seed=5)
    for _ in range(3):
        for i in range(len(dataset)):
            sample = dataset[i]
            np.testing.assert_array_equal(sample["image"][7].numpy(), sample["mask"].numpy())


def test_cache_serves_patches_without_reopening_files(root: Path, pipeline: InputPipeline) -> None:
    dm = L4SDataModule(root, pipeline, batch_size=6, cache=True, augment=False)
    dm.setup("fit")
    before = first_batch(dm.train_dataloader())["image"]
    shutil.rmtree(root / "TrainData")
    after = first_batch(dm.train_dataloader())["image"]
    assert torch.equal(before, after)
    after.add_(1.0)  # consumers may modify batches in place; the cache must not change
    assert torch.equal(first_batch(dm.train_dataloader())["image"], before)


def test_given_stats_skip_the_training_split(root: Path, pipeline: InputPipeline) -> None:
    stats = ChannelStats(pipeline.channel_names, np.zeros(16), np.full(16, 2.0))
    shutil.rmtree(root / "TrainData")
    dm = L4SDataModule(root, pipeline, batch_size=3, stats=stats)
    dm.setup("test")
    batch = first_batch(dm.test_dataloader())
    raw = PatchDataset(find_patches(root, "test"), pipeline)[0]["image"]
    torch.testing.assert_close(batch["image"][0], raw / 2.0)
    assert dm.stats is stats


def test_predict_serves_unlabelled_patches_without_masks(tmp_path: Path, make_split, pipeline) -> None:
    make_split(tmp_path / "scene", ["a", "b"], size=SIZE, masks=False)
    stats = ChannelStats(pipeline.channel_names, np.zeros(16), np.ones(16))
    dm = L4SDataModule(None, pipeline, stats=stats, test_path=tmp_path / "scene")
    dm.setup("predict")
    batch = first_batch(dm.predict_dataloader())
    assert "mask" not in batch and batch["id"] == ["a", "b"]


def test_ignore_value_reaches_the_batch(tmp_path: Path, make_split, write_h5, pipeline) -> None:
    make_split(tmp_path, ["1"], size=SIZE)
    write_h5(tmp_path / "mask" / "mask_1.h5", "mask", np.full((SIZE, SIZE), 255, np.uint8))
    dataset = PatchDataset(find_patches(tmp_path), pipeline)
    assert dataset[0]["mask"].unique().tolist() == [255]


def test_workers_are_persistent_and_deterministic(root: Path, pipeline: InputPipeline) -> None:
    def run() -> torch.Tensor:
        dm = L4SDataModule(root, pipeline, batch_size=6, num_workers=1, seed=3)
        dm.setup("fit")
        loader = dm.train_dataloader()
        assert loader.persistent_workers
        return first_batch(loader)["image"]

    assert torch.equal(run(), run())


def test_configuration_errors(root: Path, pipeline: InputPipeline) -> None:
    wrong = ChannelStats(["x"], [0.0], [1.0])
    with pytest.raises(ConfigError, match="statistics are for channels"):
        L4SDataModule(root, pipeline, stats=wrong)
    with pytest.raises(ConfigError, match="batch_size"):
        L4SDataModule(root, pipeline, batch_size=0)
    with pytest.raises(ConfigError, match="no data for the train split"):
        L4SDataModule(None, pipeline).setup("fit")
    only_train = L4SDataModule(None, pipeline, train_path=root / "TrainData")
    only_train.setup("fit")
    assert not only_train.has_split("valid") and len(only_train.train_dataloader().dataset) == 6
    with pytest.raises(ConfigError, match="no data for the valid split: .* or val_path"):
        only_train.val_dataloader()
    (root / "TrainData" / "img" / "image_3.h5").write_bytes(b"")
    with pytest.raises(InputError, match="image_3.h5: file is empty"):
        L4SDataModule(root, pipeline).setup("fit")
