"""The experiment schema: typed dataclasses of what one YAML file may say.

One YAML file describes one experiment (:class:`ExperimentConfig`) or one comparison of
several models on the same data (:class:`CompareConfig`). Each field's type and range is
declared here, once, with the aliases of :mod:`slidemap.config.validation` (``PositiveInt``,
``Probability``...); pydantic checks plain data against them (:func:`experiment_from_dict`),
so a typo or a value out of range fails at once with the file, the dotted key and the
closest valid keys. Reading YAML and applying ``--set`` overrides is
:mod:`slidemap.config.loading`.

What the schema cannot know lives above it: whether ``model.name``, a loss or a feature
name exists in its registry is checked by :func:`slidemap.workflows.configs.check_names`,
which every command calls right after loading, before any data is read.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, with_config

from slidemap.config.validation import (
    SCHEMA_CONFIG,
    Bool,
    Int,
    NonNegativeInt,
    NonNegativeNumber,
    Number,
    PositiveInt,
    PositiveNumber,
    Probability,
    Str,
    build,
)
from slidemap.errors import ConfigError

#: The paper's seven auxiliary features (§2.4), in the order of its Fig. 2 (NDVI, slope,
#: elevation, NDMI, GNDVI, brightness, BSI): the default input of an experiment and the
#: panels of the features figure.
PAPER_FEATURES: tuple[str, ...] = ("ndvi", "slope", "elevation", "ndmi", "gndvi", "brightness", "bsi")

OptimName = Literal["adam", "adamw", "sgd"]
ScheduleName = Literal["none", "cosine", "plateau"]
MonitorName = Literal["val_f1", "val_best_f1", "val_loss", "val_pr_auc"]
#: ``best_f1`` (the threshold maximising F1 on validation) or a fixed probability.
ThresholdChoice = Literal["best_f1"] | Probability
#: largest seed numpy and Lightning accept.
MAX_SEED = 2**32 - 1
#: Lightning's precision names (``Trainer(precision=...)``).
Precision = Literal["64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true",
                    "64", "32", "16", "bf16"]
#: a number of devices: at least 1, or -1 for all of them (Lightning's convention).
DeviceCount = PositiveInt | Literal[-1]
#: a share of the batches, in (0, 1].
Fraction = Annotated[Number, Field(gt=0.0, le=1.0)]


#: a list of at least one folder
Folders = Annotated[list[Str], Field(min_length=1)]


@with_config(SCHEMA_CONFIG)
@dataclass
class PhotometricAugment:
    """Photometric jitter of the optical bands, before the features are computed.

    Each patch is jittered with chance ``probability``; every non-zero strength then draws
    its own amount. Amounts are relative, so they mean the same for reflectance (0–1) and
    8-bit (0–255) bands; the band set says which units a band has (``Band.full_scale``).

    Attributes:
        probability: chance that a training patch is jittered; 0 = off.
        brightness: gain drawn from ``[1 - b, 1 + b]``.
        contrast: deviation from each band's mean scaled by ``[1 - c, 1 + c]``.
        gamma: exponent ``exp(U(-log(1 + g), log(1 + g)))`` on values over the band's full scale.
        saturation: colour deviation from grey scaled by ``[1 - s, 1 + s]`` (needs red, green, blue).
        hue: rotation of the colour plane by up to ``hue`` turns (needs red, green, blue).
        blur: chance of a Gaussian blur of the optical bands.
        blur_sigma_px: largest blur sigma, pixels (drawn from ``[0.3, blur_sigma_px]``).
        noise: largest sensor-noise standard deviation, as a fraction of full scale.
    """

    probability: Probability = 0.0
    brightness: NonNegativeNumber = 0.0
    contrast: NonNegativeNumber = 0.0
    gamma: NonNegativeNumber = 0.0
    saturation: NonNegativeNumber = 0.0
    hue: NonNegativeNumber = 0.0
    blur: Probability = 0.0
    blur_sigma_px: PositiveNumber = 1.0
    noise: NonNegativeNumber = 0.0


@with_config(SCHEMA_CONFIG)
@dataclass
class ElevationAugment:
    """Jitter of the elevation bands (DEM/DSM), before the terrain features are computed.

    Attributes:
        probability: chance that a training patch is jittered; 0 = off.
        relief: relief about the patch median scaled by ``[1 - r, 1 + r]`` (steeper or
            gentler terrain: slope, relief and hillshade change with it).
        offset_m: whole surface shifted by up to ``± offset_m`` metres (another altitude;
            slope, relief and hillshade unchanged, and a no-op with ``elevation: relative``).
    """

    probability: Probability = 0.0
    relief: NonNegativeNumber = 0.0
    offset_m: NonNegativeNumber = 0.0


@with_config(SCHEMA_CONFIG)
@dataclass
class CropAugment:
    """Random resized crops (scale augmentation) of the model input, after the features.

    A window (side ``U(min_scale, 1)`` of the patch side, aspect ratio within
    ``[1/max_aspect, max_aspect]``) is cut out and resized back to the patch size (bilinear
    for the input channels, nearest for the mask), so the network sees the ground at up to
    ``1/min_scale`` times its resolution. Features keep their physical values (slope in
    degrees is computed before the zoom).

    Attributes:
        probability: chance that a training patch is cropped; 0 = off.
        min_scale: smallest crop side as a fraction of the patch side, in (0, 1].
        max_aspect: largest ratio between the crop's sides (>= 1).
    """

    probability: Probability = 0.0
    min_scale: Annotated[Number, Field(gt=0.0, le=1.0)] = 0.6
    max_aspect: Annotated[Number, Field(ge=1.0)] = 1.25


@with_config(SCHEMA_CONFIG)
@dataclass
class AugmentationConfig:
    """Training augmentations beyond the flips and rotations of ``data.augment`` (all off by
    default; ``data.augment: false`` switches these off too)."""

    photometric: PhotometricAugment = field(default_factory=PhotometricAugment)
    elevation: ElevationAugment = field(default_factory=ElevationAugment)
    crop: CropAugment = field(default_factory=CropAugment)


@with_config(SCHEMA_CONFIG)
@dataclass
class HoldoutConfig:
    """Validation on spatial blocks of the training areas (when ``data.val_path`` is null).

    Patches are placed on their scene's grid by their ``<row>_<col>`` ids (pixel offsets);
    the grid is cut into square blocks of ``block_px`` pixels and a ``fraction`` of the
    blocks of every training area (at least one per area) is held out for validation.
    Training patches that overlap a held-out patch are dropped as well (patches overlap
    50 %), so no validation pixel is ever trained on.

    Attributes:
        fraction: share of each area's blocks used for validation; 0 = no block split.
        block_px: block side in scene pixels.
        seed: which blocks are drawn (fixed, independent of the training seed).
    """

    fraction: Annotated[Number, Field(ge=0.0, lt=1.0)] = 0.0
    block_px: PositiveInt = 512
    seed: Int = 0


@with_config(SCHEMA_CONFIG)
@dataclass
class DataConfig:
    """Where the patches are and how a model's input is made from them.

    Attributes:
        root: a Landslide4Sense root (``TrainData/ValidData/TestData``) or the other public
            layout; ``--data`` on the command line replaces it. Relative paths are taken
            from the working directory.
        train_path, val_path, test_path: per-split folders (``img/`` + ``mask/``, or any
            layout the reader knows), for custom layouts; each one given replaces that split
            of ``root``. ``train_path`` and ``val_path`` may be lists of folders (several
            areas): their patches are pooled, with ids qualified by the folder name
            (``area_A/1024_1152``) so that ids repeated across areas stay distinct. A null
            ``val_path`` without ``root`` means no separate validation data: validation on
            ``holdout`` blocks of the training areas, or none at all.
        band_set: registry name (``l4s14``) or an inline band-set definition: the bands of
            the patch files.
        bands: the bands the model reads, a subset of ``band_set`` by name (e.g. every
            ``l4s14`` band but ``B10`` for Sentinel-2 L2A products); null = all. Stored in
            the checkpoint; ``predict`` asks a scene for these only.
        features: auxiliary feature names appended after the bands (paper §2.4).
        pixel_size_m: pixel spacing for terrain features, metres; None = the band set's.
        elevation: ``absolute`` or ``relative`` (per-patch median removed from the DEM).
        batch_size: patches per batch and per process.
        num_workers: DataLoader worker processes (0 = load in the main process).
        augment: random flips and 90° rotations of training patches; ``false`` switches
            every training augmentation off (``augmentation`` included).
        augmentation: photometric, elevation and scale augmentation (off by default).
        holdout: validation on spatial blocks of the training areas.
        cache: keep the computed input channels of every patch in memory.
    """

    root: Str | None = None
    train_path: Str | Folders | None = None
    val_path: Str | Folders | None = None
    test_path: Str | None = None
    band_set: Str | dict[str, Any] = "l4s14"
    bands: list[Str] | None = None
    features: list[Str] = field(default_factory=lambda: list(PAPER_FEATURES))
    pixel_size_m: PositiveNumber | None = None
    elevation: Literal["absolute", "relative"] = "absolute"
    batch_size: PositiveInt = 16
    num_workers: NonNegativeInt = 0
    augment: Bool = True
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)
    cache: Bool = True


@with_config(SCHEMA_CONFIG)
@dataclass
class ModelConfig:
    """A registry name (:func:`slidemap.models.list_models`) and its options."""

    name: Str = "unet_cbam"
    options: dict[Str, Any] = field(default_factory=dict)


@with_config(SCHEMA_CONFIG)
@dataclass
class LossTerm:
    """One term of the (weighted-sum) loss: a loss name, its weight and its options."""

    name: Str = "bce"
    weight: NonNegativeNumber = 1.0
    options: dict[Str, Any] = field(default_factory=dict)


@with_config(SCHEMA_CONFIG)
@dataclass
class OptimConfig:
    """Optimiser: ``adam`` (the paper's), ``adamw`` or ``sgd`` (momentum 0.9)."""

    name: OptimName = "adam"
    lr: PositiveNumber = 1e-3
    weight_decay: NonNegativeNumber = 0.0


@with_config(SCHEMA_CONFIG)
@dataclass
class ScheduleConfig:
    """Learning-rate schedule: ``none``, ``cosine`` (to ``min_lr`` over ``max_epochs``) or
    ``plateau`` (multiply by ``factor`` after ``patience`` epochs without improvement of
    the trainer's monitored metric)."""

    name: ScheduleName = "none"
    min_lr: NonNegativeNumber = 0.0
    factor: Annotated[Number, Field(gt=0.0, lt=1.0)] = 0.5
    patience: NonNegativeInt = 5


@with_config(SCHEMA_CONFIG)
@dataclass
class AveragingConfig:
    """Weight averaging (Lightning's ``WeightAveraging`` callback): the checkpoints hold
    the averaged weights, and validation runs on them.

    Attributes:
        name: ``none``; ``ema`` (exponential moving average after every optimiser step,
            ``decay`` per step); ``swa`` (equal-weight average of the weights at the end of
            every epoch, stochastic weight averaging).
        decay: EMA decay per optimiser step, in (0, 1).
        start_epoch: first epoch (0-based) whose weights enter the average; before it the
            checkpoints and validation use the plain weights.
    """

    name: Literal["none", "ema", "swa"] = "none"
    decay: Annotated[Number, Field(gt=0.0, lt=1.0)] = 0.999
    start_epoch: NonNegativeInt = 0


@with_config(SCHEMA_CONFIG)
@dataclass
class TrainerConfig:
    """Lightning Trainer settings.

    Attributes:
        max_epochs: upper bound of training epochs.
        patience: early-stopping patience in epochs on ``monitor``; 0 disables it.
        monitor: validation metric choosing ``best.ckpt`` and driving early stopping:
            ``val_best_f1`` (F1 at the epoch's best threshold, the one a ``best_f1``
            checkpoint keeps), ``val_f1`` (F1 at 0.5), ``val_loss`` or ``val_pr_auc``.
        seed: seed of Python, numpy and torch (and of the data order).
        accelerator: ``auto``, ``cpu``, ``gpu``/``cuda``, ``mps``.
        devices: ``auto``, a count, or a list of device indices.
        strategy: ``auto``, ``ddp``, ``ddp_spawn``, ... (Lightning strategy names).
        num_nodes: machines taking part in DDP.
        deterministic: ask torch for deterministic algorithms (slower).
        precision: ``32-true``, ``16-mixed``, ``bf16-mixed``.
        limit_train_batches, limit_val_batches: fraction (float) or count (int) of batches.
        log_every: optimiser steps between logged training losses.
        progress: show a progress bar when the output is a terminal.
        tensorboard: also log every metric to TensorBoard event files in
            ``<run>/tensorboard/`` (needs ``pip install 'slidemap[tensorboard]'``).
        channels_last: train with weights and batches in the ``channels_last`` memory
            format (faster convolutions on CPUs and on GPUs with mixed precision).
        averaging: weight averaging (EMA or SWA), off by default.
    """

    max_epochs: PositiveInt = 100
    patience: NonNegativeInt = 10
    monitor: MonitorName = "val_best_f1"
    seed: Annotated[Int, Field(ge=0, le=MAX_SEED)] = 42
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: DeviceCount | Literal["auto"] | Annotated[list[NonNegativeInt], Field(min_length=1)] = "auto"
    strategy: Str = "auto"
    num_nodes: PositiveInt = 1
    deterministic: Bool = False
    precision: Precision = "32-true"
    limit_train_batches: PositiveInt | Fraction = 1.0
    limit_val_batches: PositiveInt | Fraction = 1.0
    log_every: PositiveInt = 10
    progress: Bool = True
    tensorboard: Bool = False
    channels_last: Bool = True
    averaging: AveragingConfig = field(default_factory=AveragingConfig)


@with_config(SCHEMA_CONFIG)
@dataclass
class ExperimentConfig:
    """One training run: data, model, loss, optimiser, schedule, trainer, threshold.

    ``threshold`` is ``best_f1`` (the threshold maximising F1 on the validation split, the
    default) or a fixed probability in [0, 1].
    """

    name: Str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Annotated[list[LossTerm], Field(min_length=1)] = field(default_factory=lambda: [LossTerm()])
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    threshold: ThresholdChoice = "best_f1"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON/checkpoint safe) that :func:`experiment_from_dict` reads back."""
        return dataclasses.asdict(self)


@with_config(SCHEMA_CONFIG)
@dataclass
class ModelVariant:
    """One model of a comparison: a display name, its model, and optional overrides of the
    base experiment (nested like the experiment YAML, e.g. ``{optim: {lr: 5e-4}}``)."""

    name: Str
    model: ModelConfig
    overrides: dict[Str, Any] = field(default_factory=dict)


@with_config(SCHEMA_CONFIG)
@dataclass
class PanelsConfig:
    """Which patches the side-by-side prediction panels show (the paper's Fig. 6 and 9):
    the listed ids, or else the ``count`` test patches with the most landslide pixels."""

    ids: list[Str] = field(default_factory=list)
    count: NonNegativeInt = 6


@with_config(SCHEMA_CONFIG)
@dataclass
class ActivationsConfig:
    """Which layer's activations to show (the paper's Fig. 3): a model (display name) and
    a module path in it (a name of ``model.named_modules()``, e.g. ``encoder.1`` = the
    second encoder stage, after its CBAM), for the first panel patch; at most
    ``max_channels`` maps."""

    model: Str = "UNet-CBAM"
    layer: Str = "encoder.1"
    max_channels: PositiveInt = 32


@with_config(SCHEMA_CONFIG)
@dataclass
class CompareConfig:
    """Several models trained and evaluated on the same data (the paper's Table 1).

    ``base`` is the shared experiment; each entry of ``models`` replaces its model (and
    applies its overrides). ``split`` is the split the table is computed on;
    ``features_patch`` the patch of the features figure (default: the first panel patch);
    ``synthetic_patches`` the size of the dataset ``slidemap demo`` generates; ``tta``
    scores every model with test-time augmentation (the 8 flips and 90° rotations, as
    ``evaluate --tta``; off by default, docs/real-data.md has the measured effect). ``seeds``
    trains every model once per seed (``trainer.seed`` replaced): Table 1 is then the mean ±
    std over seeds with block-bootstrap F1 intervals; empty = one run at ``trainer.seed``.
    """

    name: Str = "compare"
    base: ExperimentConfig = field(default_factory=ExperimentConfig)
    models: Annotated[list[ModelVariant], Field(min_length=1)] = field(default_factory=list)
    split: Literal["train", "valid", "test"] = "test"
    panels: PanelsConfig = field(default_factory=PanelsConfig)
    activations: ActivationsConfig = field(default_factory=ActivationsConfig)
    features_patch: Str | None = None
    synthetic_patches: PositiveInt = 240
    tta: Bool = False
    seeds: list[Int] = field(default_factory=list)

    def experiments(self, source: str | Path = "<config>") -> dict[str, ExperimentConfig]:
        """Display name -> the resolved, validated experiment of each model, in config order.

        Raises:
            ConfigError: a variant's resolved experiment is invalid (names the variant).
        """
        resolved: dict[str, ExperimentConfig] = {}
        for variant in self.models:
            raw = deep_update(self.base.to_dict(), variant.overrides)
            raw["model"] = dataclasses.asdict(variant.model)
            raw["name"] = variant.name
            try:
                resolved[variant.name] = experiment_from_dict(raw, source=source)
            except ConfigError as exc:
                raise ConfigError(f"models[{variant.name}]: {exc.problem}", source) from None
        return resolved

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as saved next to the comparison's outputs."""
        return dataclasses.asdict(self)


def experiment_from_dict(raw: Mapping[str, Any], source: str | Path = "<config>") -> ExperimentConfig:
    """:class:`ExperimentConfig` from plain data (a parsed YAML or :meth:`~ExperimentConfig.to_dict`).

    Raises:
        ConfigError: unknown key, wrong type or a value out of range, naming ``source``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"an experiment config must be a mapping, got {type(raw).__name__}", source)
    return build(ExperimentConfig, raw, source)


def deep_update(target: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` (modified in place and returned) with ``updates`` merged in, nested
    mappings key by key; every other value replaced by a copy."""
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


