"""Torch datasets and the Lightning DataModule for Landslide4Sense-style patch folders.

Flow per sample: read the ``.h5`` files (:mod:`slidemap.data.l4s`) → [photometric and
elevation jitter of the bands, training only] → band stack and features (a :class:`Pipeline`,
e.g. :class:`slidemap.features.InputPipeline`) → [cache] → [random resized crop] → random
dihedral transform (training only) → per-channel normalisation
(:class:`~slidemap.data.normalization.ChannelStats`) → tensors. With band jitter on, the
cache keeps the bands instead of the computed channels (the features follow the jitter).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from slidemap.bands import BandSet
from slidemap.data.augment import BandJitter, RandomResizedCrop, random_dihedral
from slidemap.data.holdout import spatial_block_split
from slidemap.data.l4s import PatchRef, find_area_patches, find_patches, read_patch
from slidemap.data.normalization import ChannelStats, compute_channel_stats
from slidemap.errors import ConfigError

log = logging.getLogger(__name__)

Sample = dict[str, Any]
#: a dataset key: a patch index, or ``(index, epoch)`` from :class:`EpochSampler`.
SampleKey = int | tuple[int, int]
#: one data folder, or several (areas) pooled into one split
PathSpec = str | Path | Sequence[str | Path]


class Pipeline(Protocol):
    """What a dataset needs from an input pipeline: the band set of the files
    (``source_band_set``; ``band_set`` is the subset the model reads), the names of the
    channels it makes, and the computation. :class:`slidemap.features.InputPipeline`
    is the one slidemap builds; it is passed in (data sits below features and does not
    import them), and it must pickle for DataLoader workers.
    """

    source_band_set: BandSet
    band_set: BandSet

    @property
    def channel_names(self) -> list[str]:
        """Output channel names, in order."""
        ...

    def __call__(self, bands: np.ndarray) -> np.ndarray:
        """``(C_bands, H, W)`` stored units -> ``(C_out, H, W) float32`` model channels."""
        ...


def _check_stats(stats: ChannelStats | None, pipeline: Pipeline) -> None:
    if stats is not None and stats.names != pipeline.channel_names:
        raise ConfigError(
            f"normalisation statistics are for channels {stats.names} but the input pipeline "
            f"produces {pipeline.channel_names}; use the statistics of the same pipeline"
        )


class EpochSampler(Sampler[tuple[int, int]]):
    """The training order of one epoch, a pure function of ``(seed, epoch)``.

    Yields ``(index, epoch)`` keys, so that :class:`PatchDataset` draws each patch's
    augmentation from ``(seed, epoch, index)`` too. Nothing depends on the state left by
    earlier epochs, so a run resumed from an epoch-end checkpoint (Lightning calls
    :meth:`set_epoch` with the restored epoch before iterating) sees exactly the batches
    of an uninterrupted run, whatever the number of DataLoader workers.

    Args:
        n_items: dataset length.
        seed: the run's seed.
        shuffle: a fresh permutation per epoch (``False``: index order).
        resume_at: ``(epoch, items)``: the first pass over ``epoch`` skips the ``items``
            first keys, which a run interrupted mid-epoch had trained on already (its
            checkpoint says how many), so the resumed epoch sees exactly the remaining batches.
    """

    def __init__(self, n_items: int, seed: int, shuffle: bool = True,
                 resume_at: tuple[int, int] | None = None) -> None:
        self.n_items = int(n_items)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self._iterated = False
        self._epoch_given = False
        self._resume_at = resume_at

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._epoch_given = True

    def __len__(self) -> int:
        return self.n_items

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # Without set_epoch between two passes (Lightning's DDP sampler wrapper does not
        # forward it) count epochs here, so augmentation still differs from epoch to epoch.
        if self._iterated and not self._epoch_given:
            self.epoch += 1
        self._iterated, self._epoch_given = True, False
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n_items)
                 if self.shuffle else np.arange(self.n_items))
        if self._resume_at is not None and self._resume_at[0] == self.epoch:
            order = order[self._resume_at[1]:]
            self._resume_at = None  # once: the next pass over any epoch is whole
        return iter([(int(index), self.epoch) for index in order])


class PatchDataset(Dataset[Sample]):
    """Patches as model-ready samples.

    Args:
        refs: the patches (:func:`~slidemap.data.l4s.find_patches`).
        pipeline: computes the input channels from the band stack.
        stats: normalisation applied last; ``None`` leaves values in pipeline units.
        augment: apply a random dihedral transform (flip / 90° rotation) to image and mask.
        cache: keep each patch's pipeline output in memory after its first read
            (≈ ``in_channels × H × W × 4`` bytes, 0.9 MB for a 14-band 128² patch). With
            worker processes each worker fills its own copy unless the cache was filled
            before the workers started (e.g. by computing statistics).
        seed: seed of the augmentation draws; combined with the DataLoader worker's seed so
            workers draw different, reproducible transforms.
        band_jitter: photometric/elevation jitter of the bands before the pipeline
            (with ``augment``; :class:`~slidemap.data.augment.BandJitter`).
        crop: random resized crop of the pipeline output (with ``augment``).

    Items are ``{"image": FloatTensor (C_out, H, W), "mask": LongTensor (H, W) in {0, 1, 255},
    "id": str}``; ``"mask"`` is absent when the ref has no mask.
    """

    def __init__(
        self,
        refs: Sequence[PatchRef],
        pipeline: Pipeline,
        stats: ChannelStats | None = None,
        augment: bool = False,
        cache: bool = False,
        seed: int = 0,
        band_jitter: BandJitter | None = None,
        crop: RandomResizedCrop | None = None,
    ) -> None:
        self.refs = list(refs)
        self.pipeline = pipeline
        _check_stats(stats, self.pipeline)
        self.stats = stats
        self.augment = augment
        self.cache = cache
        self.seed = int(seed)
        self.band_jitter = band_jitter if augment and band_jitter is not None and band_jitter.active else None
        self.crop = crop if augment and crop is not None and crop.active else None
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._band_cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.refs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Pipeline output ``(C_out, H, W) float32`` and mask ``(H, W) uint8`` (or ``None``),
        before augmentation and normalisation; cached when ``cache=True``. Do not modify them.

        Raises:
            InputError: the patch's files are unreadable or malformed (names the file).
        """
        if index in self._cache:
            return self._cache[index]
        image, mask = read_patch(self.refs[index], n_bands=len(self.pipeline.source_band_set))
        item = (self.pipeline(image), mask)
        if self.cache and self.band_jitter is None:  # with jitter the bands are cached instead
            self._cache[index] = item
        return item

    def load_bands(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Band stack ``(C, H, W) float32`` (non-finite values replaced by 0, as the
        pipeline does) and mask, before any augmentation; cached when ``cache=True``."""
        if index in self._band_cache:
            return self._band_cache[index]
        image, mask = read_patch(self.refs[index], n_bands=len(self.pipeline.source_band_set))
        item = (np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0), mask)
        if self.cache:
            self._band_cache[index] = item
        return item

    def _generator(self) -> np.random.Generator:
        """The augmentation generator of this process (one per DataLoader worker)."""
        worker = get_worker_info()
        owner = (os.getpid(), -1 if worker is None else worker.id)
        if self._rng is None or self._rng_owner != owner:
            entropy = [self.seed] if worker is None else [self.seed, worker.seed]
            self._rng = np.random.default_rng(entropy)
            self._rng_owner = owner
        return self._rng

    def __getitem__(self, key: SampleKey) -> Sample:
        """Sample ``key``: an index (augmentation drawn from this process's generator), or
        ``(index, epoch)`` from :class:`EpochSampler` (drawn from ``(seed, epoch, index)``)."""
        index, epoch = key if isinstance(key, tuple) else (key, None)
        rng = extra = None
        if self.augment:
            rng = (self._generator() if epoch is None
                   else np.random.default_rng([self.seed, epoch, index]))
            # jitter and crops draw from their own stream: the flips stay those of before
            extra = rng if epoch is None else np.random.default_rng([self.seed, epoch, index, 1])
        if self.band_jitter is not None and extra is not None:
            bands, stored_mask = self.load_bands(index)
            stored_image = self.pipeline(self.band_jitter(bands, extra))
        else:
            stored_image, stored_mask = self.load(index)
        image, mask = stored_image, stored_mask
        if self.crop is not None and extra is not None:
            image, mask = self.crop(image, mask, extra)
        if rng is not None:
            image, mask = random_dihedral(image, mask, rng)
        if self.stats is not None:
            image = self.stats.apply(image)
        # never hand out the cached arrays themselves: a consumer may modify a batch in place
        if image is stored_image:
            image = image.copy()
        sample: Sample = {"image": torch.from_numpy(image), "id": self.refs[index].id}
        if mask is not None:
            sample["mask"] = torch.from_numpy(mask.astype(np.int64))
        return sample


class L4SDataModule(L.LightningDataModule):
    """Train/validation/test/predict loaders over a Landslide4Sense-style dataset.

    Args:
        root: a dataset root, or one split folder (then every split reads it; a warning
            says so), or ``None`` when every split is given by path.
        pipeline: the input pipeline (a :class:`Pipeline`).
        batch_size: patches per batch.
        num_workers: DataLoader worker processes; > 0 keeps them alive across epochs.
        augment: random flips / 90° rotations on the training split (``False``: no
            training augmentation at all).
        augmentation: photometric, elevation and crop augmentation of the training split
            (:class:`~slidemap.config.AugmentationConfig` or alike); ``None`` = none.
        stats: normalisation statistics (e.g. from a checkpoint); ``None`` computes them once
            from the training split (available as :attr:`stats` after :meth:`setup`).
        cache: keep decoded, feature-stacked patches in memory.
        train_split, val_split, test_split: split names in ``root`` (``None`` disables one).
        train_path, val_path, test_path: folders that replace ``root``/split for one split
            (any layout :func:`~slidemap.data.l4s.find_patches` reads); ``train_path`` and
            ``val_path`` may list several folders (areas), pooled with area-qualified ids
            (:func:`~slidemap.data.l4s.find_area_patches`).
        holdout: validation on spatial blocks of the training patches
            (:class:`~slidemap.config.HoldoutConfig` or alike: ``fraction``, ``block_px``,
            ``seed``), used when the validation split has neither a path nor a root split.
        seed: seeds shuffling and augmentation; same seed, same batches.
        pin_memory: DataLoader ``pin_memory`` (useful with a GPU).
        resume_at: ``(epoch, patches)`` already trained on in an epoch a resumed run
            continues mid-way (see :class:`EpochSampler`).

    ``predict_dataloader`` serves the test split without requiring masks.
    """

    def __init__(
        self,
        root: str | Path | None,
        pipeline: Pipeline,
        batch_size: int = 8,
        num_workers: int = 0,
        augment: bool = True,
        stats: ChannelStats | None = None,
        cache: bool = True,
        train_split: str | None = "train",
        val_split: str | None = "valid",
        test_split: str | None = "test",
        *,
        train_path: PathSpec | None = None,
        val_path: PathSpec | None = None,
        test_path: str | Path | None = None,
        seed: int = 0,
        pin_memory: bool = False,
        augmentation: Any = None,
        holdout: Any = None,
        resume_at: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.resume_at = resume_at
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        self.root = None if root is None else Path(root)
        self.pipeline = pipeline
        _check_stats(stats, self.pipeline)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.augment = augment
        self.cache = cache
        self.seed = int(seed)
        self.pin_memory = pin_memory
        self._sources: dict[str, tuple[PathSpec | None, str | None]] = {
            "train": (train_path, train_split),
            "valid": (val_path, val_split),
            "test": (test_path, test_split),
        }
        self.holdout = holdout if holdout is not None and holdout.fraction > 0 else None
        band_set = self.pipeline.source_band_set  # the jitter acts on the bands as read
        self.band_jitter = (None if augmentation is None else
                            BandJitter(band_set, augmentation.photometric, augmentation.elevation))
        self.crop = None if augmentation is None else RandomResizedCrop(augmentation.crop)
        self._stats = stats
        self._datasets: dict[str, PatchDataset] = {}
        self._holdout_refs: tuple[list[PatchRef], list[PatchRef]] | None = None

    @property
    def stats(self) -> ChannelStats | None:
        """Normalisation statistics (given, or computed from the training split in setup)."""
        return self._stats

    def _given(self, which: str) -> bool:
        path, split = self._sources[which]
        return path is not None or (self.root is not None and split is not None)

    def uses_holdout(self) -> bool:
        """Whether validation is a spatial block split of the training patches."""
        return self.holdout is not None and not self._given("valid")

    def has_split(self, which: str) -> bool:
        """Whether ``which`` (``"train"``, ``"valid"``, ``"test"``) has a path or a root
        split (or, for ``"valid"``, held-out blocks of the training split)."""
        return self._given(which) or (which == "valid" and self.uses_holdout())

    def refs(self, which: str, require_masks: bool = True) -> list[PatchRef]:
        """Patches of ``which`` (``"train"``, ``"valid"`` or ``"test"``).

        Raises:
            ConfigError: the split has neither a path nor a root split name.
            InputError: as :func:`~slidemap.data.l4s.find_patches`.
        """
        if which in ("train", "valid") and self.uses_holdout():
            if self._holdout_refs is None:
                holdout = self.holdout
                self._holdout_refs = spatial_block_split(
                    self._given_refs("train", require_masks=True), holdout.fraction,
                    holdout.block_px, seed=holdout.seed)
                log.info("spatial block split: %d training, %d validation patches",
                         *map(len, self._holdout_refs))
            return list(self._holdout_refs[0 if which == "train" else 1])
        return self._given_refs(which, require_masks)

    def _given_refs(self, which: str, require_masks: bool) -> list[PatchRef]:
        path, split = self._sources[which]
        if path is not None:
            return find_area_patches(path if isinstance(path, str | Path) else list(path),
                                     split=None, require_masks=require_masks)
        if not self._given(which):
            argument = {"train": "train_path", "valid": "val_path", "test": "test_path"}[which]
            raise ConfigError(f"no data for the {which} split: give a root and a split name, or {argument}")
        return find_patches(self.root, split=split, require_masks=require_masks)  # type: ignore[arg-type]

    def _dataset(self, which: str, require_masks: bool = True) -> PatchDataset:
        key = which if require_masks else f"{which}-unlabelled"
        if key not in self._datasets:
            refs = self.refs(which, require_masks=require_masks)
            log.info("%s: %d patches", key, len(refs))
            self._datasets[key] = PatchDataset(
                refs, self.pipeline, stats=self._stats, augment=self.augment and which == "train",
                cache=self.cache, seed=self.seed, band_jitter=self.band_jitter, crop=self.crop,
            )
        return self._datasets[key]

    def _ensure_stats(self) -> ChannelStats:
        if self._stats is None:
            train = self._dataset("train")
            log.info("computing normalisation statistics over %d training patches", len(train))
            self._stats = compute_channel_stats(
                (train.load(i)[0] for i in range(len(train))), self.pipeline.channel_names
            )
            for dataset in self._datasets.values():
                dataset.stats = self._stats
        return self._stats

    def setup(self, stage: str | None = None) -> None:
        """Find the patches of the splits ``stage`` needs and make sure statistics exist.

        A validation split that is not configured (no root split, no ``val_path``) is
        skipped here; asking for its loader raises :class:`ConfigError`.
        """
        wanted = {
            None: ("train", "valid"), "fit": ("train", "valid"), "validate": ("valid",),
            "test": ("test",), "predict": (),
        }.get(stage, ())
        for which in wanted:
            if which == "train" or self.has_split(which):
                self._dataset(which)
        if stage == "predict":
            self._dataset("test", require_masks=False)
        self._ensure_stats()
        if "train" in self._datasets and "valid" in self._datasets:
            same = [r.image for r in self._datasets["train"].refs] == [
                r.image for r in self._datasets["valid"].refs
            ]
            if same:
                log.warning("validation uses the training patches (one split folder given); "
                            "validation metrics will be optimistic")

    def _loader(self, dataset: PatchDataset, shuffle: bool) -> DataLoader[Sample]:
        # Training order and augmentation come from (seed, epoch) alone (EpochSampler), not
        # from a generator advanced by earlier epochs: that is what makes --resume exact.
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=(EpochSampler(len(dataset), self.seed, shuffle=True, resume_at=self.resume_at)
                     if shuffle else None),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader[Sample]:
        self._ensure_stats()
        return self._loader(self._dataset("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader[Sample]:
        self._ensure_stats()
        return self._loader(self._dataset("valid"), shuffle=False)

    def test_dataloader(self) -> DataLoader[Sample]:
        self._ensure_stats()
        return self._loader(self._dataset("test"), shuffle=False)

    def predict_dataloader(self) -> DataLoader[Sample]:
        self._ensure_stats()
        return self._loader(self._dataset("test", require_masks=False), shuffle=False)
