"""Typed experiment configuration, loaded from YAML.

One YAML file describes one experiment (:class:`ExperimentConfig`) or one comparison of
several models on the same data (:class:`CompareConfig`). Loading checks every key and
every value's type against the dataclasses below, so a typo fails at once with the file,
the dotted key and the closest valid keys::

    configs/paper/unet.yaml: unknown key 'trainer.max_epoch'; did you mean 'max_epochs'?

Overrides (``--set trainer.max_epochs=3``) are dotted ``key=value`` pairs whose value is
parsed as a YAML scalar (``3`` → int, ``1e-3`` → float, ``true`` → bool, ``[a, b]`` → list)
and applied to the raw YAML before validation, so they are checked the same way.

Model names, loss names and feature names are checked here against their registries, so
an unknown name is a :class:`~slidemap.errors.ConfigError` before any data is read.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from slidemap.errors import ConfigError

#: The paper's seven auxiliary features (§2.4), in the order of its Fig. 2.
PAPER_FEATURES: tuple[str, ...] = ("ndvi", "ndmi", "gndvi", "bsi", "brightness", "slope", "elevation")

OptimName = Literal["adam", "adamw", "sgd"]
ScheduleName = Literal["none", "cosine", "plateau"]
MonitorName = Literal["val_f1", "val_best_f1", "val_loss", "val_pr_auc"]


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

    probability: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    blur: float = 0.0
    blur_sigma_px: float = 1.0
    noise: float = 0.0


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

    probability: float = 0.0
    relief: float = 0.0
    offset_m: float = 0.0


@dataclass
class CropAugment:
    """Random resized crops (scale augmentation) of the model input, after the features.

    A square-ish window (side ``U(min_scale, 1)`` of the patch side, aspect ratio within
    ``[1/max_aspect, max_aspect]``) is cut out and resized back to the patch size (bilinear
    for the input channels, nearest for the mask), so the network sees the ground at up to
    ``1/min_scale`` times its resolution. Features keep their physical values (slope in
    degrees is computed before the zoom).

    Attributes:
        probability: chance that a training patch is cropped; 0 = off.
        min_scale: smallest crop side as a fraction of the patch side, in (0, 1].
        max_aspect: largest ratio between the crop's sides (>= 1).
    """

    probability: float = 0.0
    min_scale: float = 0.6
    max_aspect: float = 1.25


@dataclass
class AugmentationConfig:
    """Training augmentations beyond the flips and rotations of ``data.augment`` (all off by
    default; ``data.augment: false`` switches these off too)."""

    photometric: PhotometricAugment = field(default_factory=PhotometricAugment)
    elevation: ElevationAugment = field(default_factory=ElevationAugment)
    crop: CropAugment = field(default_factory=CropAugment)


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

    fraction: float = 0.0
    block_px: int = 512
    seed: int = 0


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
        band_set: registry name (``l4s14``) or an inline band-set definition.
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

    root: str | None = None
    train_path: str | list[str] | None = None
    val_path: str | list[str] | None = None
    test_path: str | None = None
    band_set: str | dict[str, Any] = "l4s14"
    features: list[str] = field(default_factory=lambda: list(PAPER_FEATURES))
    pixel_size_m: float | None = None
    elevation: Literal["absolute", "relative"] = "absolute"
    batch_size: int = 16
    num_workers: int = 0
    augment: bool = True
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)
    cache: bool = True


@dataclass
class ModelConfig:
    """A registry name (:func:`slidemap.models.list_models`) and its options."""

    name: str = "unet_cbam"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossTerm:
    """One term of the (weighted-sum) loss: a loss name, its weight and its options."""

    name: str = "bce"
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimiser: ``adam`` (the paper's), ``adamw`` or ``sgd`` (momentum 0.9)."""

    name: OptimName = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: ``none``, ``cosine`` (to ``min_lr`` over ``max_epochs``) or
    ``plateau`` (multiply by ``factor`` after ``patience`` epochs without improvement of
    the trainer's monitored metric)."""

    name: ScheduleName = "none"
    min_lr: float = 0.0
    factor: float = 0.5
    patience: int = 5


@dataclass
class AveragingConfig:
    """Weight averaging (Lightning's ``WeightAveraging`` callback): the checkpoints hold
    the averaged weights, and validation runs on them.

    Attributes:
        name: ``none``; ``ema`` (exponential moving average after every optimiser step,
            ``decay`` per step); ``swa`` (equal-weight average of the weights at the end of
            every epoch, stochastic weight averaging).
        decay: EMA decay per optimiser step.
        start_epoch: first epoch (0-based) whose weights enter the average; before it the
            checkpoints and validation use the plain weights.
    """

    name: Literal["none", "ema", "swa"] = "none"
    decay: float = 0.999
    start_epoch: int = 0


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

    max_epochs: int = 100
    patience: int = 10
    monitor: MonitorName = "val_best_f1"
    seed: int = 42
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    deterministic: bool = False
    precision: str = "32-true"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = False
    channels_last: bool = True
    averaging: AveragingConfig = field(default_factory=AveragingConfig)


@dataclass
class ExperimentConfig:
    """One training run: data, model, loss, optimiser, schedule, trainer, threshold.

    ``threshold`` is ``best_f1`` (the threshold maximising F1 on the validation split, the
    default) or a fixed probability in [0, 1].
    """

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: list[LossTerm] = field(default_factory=lambda: [LossTerm()])
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    threshold: Literal["best_f1"] | float = "best_f1"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON/checkpoint safe) that :func:`experiment_from_dict` reads back."""
        return dataclasses.asdict(self)


@dataclass
class ModelVariant:
    """One model of a comparison: a display name, its model, and optional overrides of the
    base experiment (nested like the experiment YAML, e.g. ``{optim: {lr: 5e-4}}``)."""

    name: str
    model: ModelConfig
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class PanelsConfig:
    """Which patches the side-by-side prediction panels show (the paper's Fig. 6 and 9):
    the listed ids, or else the ``count`` test patches with the most landslide pixels."""

    ids: list[str] = field(default_factory=list)
    count: int = 6


@dataclass
class ActivationsConfig:
    """Which layer's activations to show (the paper's Fig. 3): a model (display name) and
    a module path in it (a name of ``model.named_modules()``, e.g. ``encoder.1`` = the
    second encoder stage, after its CBAM), for the first panel patch; at most
    ``max_channels`` maps."""

    model: str = "UNet-CBAM"
    layer: str = "encoder.1"
    max_channels: int = 32


@dataclass
class CompareConfig:
    """Several models trained and evaluated on the same data (the paper's Table 1).

    ``base`` is the shared experiment; each entry of ``models`` replaces its model (and
    applies its overrides). ``split`` is the split the table is computed on;
    ``features_patch`` the patch of the features figure (default: the first panel patch);
    ``synthetic_patches`` the size of the dataset ``slidemap demo`` generates. ``seeds``
    trains every model once per seed (``trainer.seed`` replaced): Table 1 is then the mean ±
    std over seeds with block-bootstrap F1 intervals; empty = one run at ``trainer.seed``.
    """

    name: str = "compare"
    base: ExperimentConfig = field(default_factory=ExperimentConfig)
    models: list[ModelVariant] = field(default_factory=list)
    split: Literal["train", "valid", "test"] = "test"
    panels: PanelsConfig = field(default_factory=PanelsConfig)
    activations: ActivationsConfig = field(default_factory=ActivationsConfig)
    features_patch: str | None = None
    synthetic_patches: int = 240
    seeds: list[int] = field(default_factory=list)

    def experiments(self, source: str | Path = "<config>") -> dict[str, ExperimentConfig]:
        """Display name -> the resolved, validated experiment of each model, in config order.

        Raises:
            ConfigError: a variant's resolved experiment is invalid (names the variant).
        """
        resolved: dict[str, ExperimentConfig] = {}
        for variant in self.models:
            raw = _deep_update(self.base.to_dict(), variant.overrides)
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


# --------------------------------------------------------------------------- validation
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    return {type(None): "null", int: "an integer", float: "a number", str: "a string",
            bool: "true/false"}.get(tp, str(tp))


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _Mismatch(Exception):
    """A value does not fit a type (internal; becomes a ConfigError with the key)."""


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """``value`` checked against (and, for dataclasses, built as) type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) is not bool:
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, key, source)
            except _Mismatch:
                continue
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _Mismatch
        return _build(tp, value, key, source)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        (item_type,) = typing.get_args(tp)
        return [_checked(v, item_type, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _Mismatch
        return copy.deepcopy(dict(value))
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"config type {tp!r} is not supported")  # a bug in this module


def _checked(value: Any, tp: Any, key: str, source: str) -> Any:
    try:
        return _convert(value, tp, key, source)
    except _Mismatch:
        raise ConfigError(
            f"{key!r} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})", source
        ) from None


def _close_matches(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"; valid keys: {', '.join(valid)}"


def _build(cls: type, raw: Mapping[str, Any], prefix: str, source: str) -> Any:
    """Instance of dataclass ``cls`` from ``raw``, every key and type checked."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown key {dotted!r}{_close_matches(str(key), names)}", source)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            dotted = f"{prefix}.{f.name}" if prefix else f.name
            kwargs[f.name] = _checked(raw[f.name], hints[f.name], dotted, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            dotted = f"{prefix}.{f.name}" if prefix else f.name
            raise ConfigError(f"missing key {dotted!r}", source)
    return cls(**kwargs)


def _check_names(config: ExperimentConfig, source: str) -> None:
    """Registry names and value ranges that types alone cannot check.

    The registries live in higher layers; they are imported here, inside the function, so
    that a config with an unknown model, loss or feature fails when it is loaded (before
    any data is read) while ``import slidemap.config`` stays light and acyclic.
    """
    from slidemap.features import list_features
    from slidemap.models import list_models
    from slidemap.models.registry import model_info
    from slidemap.training.losses import list_losses

    if config.model.name not in list_models():
        raise ConfigError(
            f"unknown model 'model.name: {config.model.name}'"
            f"{_close_matches(config.model.name, list_models())}", source
        )
    valid_options = list(model_info(config.model.name).options)
    for option in config.model.options:
        if option not in valid_options:
            raise ConfigError(
                f"model {config.model.name!r} has no option 'model.options.{option}'"
                f"{_close_matches(option, valid_options)}; valid: {', '.join(valid_options)}",
                source,
            )
    for i, term in enumerate(config.loss):
        if term.name not in list_losses():
            raise ConfigError(
                f"unknown loss 'loss[{i}].name: {term.name}'{_close_matches(term.name, list_losses())}",
                source,
            )
    if not config.loss:
        raise ConfigError("'loss' needs at least one term", source)
    known = list_features()
    for name in config.data.features:
        if name not in known:
            raise ConfigError(
                f"unknown feature {name!r} in 'data.features'{_close_matches(name, known)}", source
            )
    _check_band_set(config.data, source)
    if isinstance(config.threshold, float) and not 0.0 <= config.threshold <= 1.0:
        raise ConfigError(f"'threshold' must lie in [0, 1], got {config.threshold}", source)
    positive = {
        "data.batch_size": config.data.batch_size,
        "trainer.max_epochs": config.trainer.max_epochs,
        "trainer.num_nodes": config.trainer.num_nodes,
        "trainer.log_every": config.trainer.log_every,
        "optim.lr": config.optim.lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key!r} must be positive, got {value}", source)
    for key, value in {"data.num_workers": config.data.num_workers,
                       "trainer.patience": config.trainer.patience}.items():
        if value < 0:
            raise ConfigError(f"{key!r} must be >= 0, got {value}", source)
    _check_recipe(config, source)


def _check_recipe(config: ExperimentConfig, source: str) -> None:
    """Ranges of the augmentation, hold-out and averaging settings (probabilities in
    [0, 1], strengths >= 0, a hold-out fraction below 1, an EMA decay in (0, 1))."""
    augmentation = config.data.augmentation
    sections = {"data.augmentation.photometric": augmentation.photometric,
                "data.augmentation.elevation": augmentation.elevation,
                "data.augmentation.crop": augmentation.crop}
    for prefix, section in sections.items():
        for item in dataclasses.fields(section):
            value = getattr(section, item.name)
            key = f"{prefix}.{item.name}"
            if value < 0:
                raise ConfigError(f"{key!r} must be >= 0, got {value}", source)
            if item.name in ("probability", "blur") and value > 1:
                raise ConfigError(f"{key!r} is a probability and must lie in [0, 1], got {value}", source)
    crop = augmentation.crop
    if not 0 < crop.min_scale <= 1:
        raise ConfigError(f"'data.augmentation.crop.min_scale' must lie in (0, 1], got {crop.min_scale}", source)
    if crop.max_aspect < 1:
        raise ConfigError(f"'data.augmentation.crop.max_aspect' must be >= 1, got {crop.max_aspect}", source)
    holdout = config.data.holdout
    if not 0 <= holdout.fraction < 1:
        raise ConfigError(f"'data.holdout.fraction' must lie in [0, 1), got {holdout.fraction}", source)
    if holdout.block_px < 1:
        raise ConfigError(f"'data.holdout.block_px' must be positive, got {holdout.block_px}", source)
    averaging = config.trainer.averaging
    if not 0 < averaging.decay < 1:
        raise ConfigError(f"'trainer.averaging.decay' must lie in (0, 1), got {averaging.decay}", source)
    if averaging.start_epoch < 0:
        raise ConfigError(f"'trainer.averaging.start_epoch' must be >= 0, got {averaging.start_epoch}", source)
    for key in ("train_path", "val_path"):
        value = getattr(config.data, key)
        if isinstance(value, list) and not value:
            raise ConfigError(f"'data.{key}' is an empty list; give at least one folder or null", source)


def _check_band_set(data: DataConfig, source: str) -> None:
    """The band set exists and has every band that ``data.features`` needs (one line each)."""
    from slidemap.bands import get_band_set
    from slidemap.errors import BandSetError
    from slidemap.features import get_feature

    try:
        band_set = get_band_set(data.band_set)
        for name in data.features:
            get_feature(name).check(band_set)
    except BandSetError as exc:
        raise ConfigError(f"'data.band_set'/'data.features': {exc.problem}", source) from None


def resolve_data_path(path: str | Path) -> Path:
    """A data path as given if it exists, or else relative to the repository checkout.

    Relative paths in configs (``../shared/data/rgbd-landslides/area_A``) are first taken
    from the working directory; when nothing is there and slidemap runs from a source
    checkout (``src/slidemap`` beside a ``pyproject.toml``), from the checkout's root, so a
    shipped config works from any directory. Otherwise ``path`` is returned unchanged and
    the reader names it in its error.
    """
    candidate = Path(path).expanduser()
    if candidate.exists() or candidate.is_absolute():
        return candidate
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / candidate).exists():
        return (checkout / candidate).resolve()
    return candidate


def experiment_from_dict(raw: Mapping[str, Any], source: str | Path = "<config>") -> ExperimentConfig:
    """:class:`ExperimentConfig` from plain data (a parsed YAML or :meth:`~ExperimentConfig.to_dict`).

    Raises:
        ConfigError: unknown key, wrong type or unknown model/loss/feature, naming ``source``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"an experiment config must be a mapping, got {type(raw).__name__}", source)
    config = _build(ExperimentConfig, raw, "", str(source))
    _check_names(config, str(source))
    return config


# ------------------------------------------------------------------------------ loading
def parse_override(text: str, source: str | Path | None = None) -> tuple[list[str], Any]:
    """``"trainer.max_epochs=3"`` -> ``(["trainer", "max_epochs"], 3)`` (value as YAML).

    ``source`` is the config file the override applies to, named in errors.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value", source)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})", source) from None
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], source: str | Path) -> dict[str, Any]:
    """Set each dotted ``key=value`` in nested ``raw`` (in place; returns it).

    A numeric part indexes a list (``loss.0.weight=0.5``). Keys that do not exist are set
    anyway and then rejected by validation, with the usual close-match hint.
    """
    for text in overrides:
        parts, value = parse_override(text, source)
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"override {text!r}: {'.'.join(parts[:i])!r} is a list of {len(node)}; "
                        f"{part!r} is not an index of it", source
                    )
                index = int(part)
                if last:
                    node[index] = value
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), dict | list):
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(
                    f"override {text!r}: {'.'.join(parts[:i])!r} is a value, not a section", source
                )
    return raw


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file does not exist", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file ({exc.strerror})", path) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())}", path) from None
    if raw is None:
        raise ConfigError("config file is empty; expected a mapping of settings (start from configs/demo.yaml)", path)
    if not isinstance(raw, dict):
        raise ConfigError(f"the top level must be a mapping, got {type(raw).__name__}", path)
    return raw


def _deep_update(target: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def resolve_config_path(path: str | Path) -> Path:
    """``path`` if it exists; otherwise a config shipped in the package under that name.

    So ``slidemap train --config paper/unet.yaml`` and ``configs/paper/unet.yaml`` both
    work from an installed package (``configs/`` prefix optional).
    """
    candidate = Path(path)
    if candidate.exists():
        return candidate
    relative = candidate.as_posix().removeprefix("configs/")
    packaged = resources.files("slidemap") / "configs" / relative
    if packaged.is_file():
        return Path(str(packaged))
    return candidate


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML, apply dotted overrides, validate.

    Args:
        path: YAML file (or the name of a config shipped in the package).
        overrides: ``["trainer.max_epochs=3", "data.root=/data/l4s"]``.

    Raises:
        ConfigError: naming the file and the key at fault.
    """
    resolved = resolve_config_path(path)
    # overrides address the defaults too (``loss.0.weight`` when the file has no ``loss``)
    raw = _deep_update(ExperimentConfig().to_dict(), _read_yaml(resolved))
    raw = apply_overrides(raw, overrides, resolved)
    return experiment_from_dict(raw, source=resolved)


def load_compare_config(path: str | Path, overrides: Sequence[str] = ()) -> CompareConfig:
    """Read a comparison YAML: ``base`` is inline or a path relative to this file, and
    ``base_overrides`` (optional, nested like an experiment) changes it for this comparison.

    Overrides address the comparison (``base.trainer.max_epochs=5``, ``split=valid``).
    Every model's resolved experiment is validated here, so a bad variant fails before
    any training starts.
    """
    resolved = resolve_config_path(path)
    raw = _read_yaml(resolved)
    base = raw.get("base", {})
    if isinstance(base, str):
        base = _read_yaml(resolve_config_path(resolved.parent / base))
    if not isinstance(base, Mapping):
        raise ConfigError(f"'base' must be a mapping or a file name, got {base!r}", resolved)
    raw["base"] = _deep_update(ExperimentConfig().to_dict(), base)
    # ``base_overrides`` changes the base file's settings for this comparison only (e.g. a
    # deployable config trained on every area, compared here with one area left out)
    base_overrides = raw.pop("base_overrides", None) or {}
    if not isinstance(base_overrides, Mapping):
        raise ConfigError(f"'base_overrides' must be a mapping, got {base_overrides!r}", resolved)
    _deep_update(raw["base"], base_overrides)
    raw = apply_overrides(raw, overrides, resolved)
    config = _build(CompareConfig, raw, "", str(resolved))
    _check_names(config.base, str(resolved))
    if not config.models:
        raise ConfigError("'models' needs at least one model variant", resolved)
    names = [v.name for v in config.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"model variant names repeat: {names}", resolved)
    if len(set(config.seeds)) != len(config.seeds):
        raise ConfigError(f"'seeds' repeat: {config.seeds}", resolved)
    config.experiments(resolved)
    return config


def save_config(config: ExperimentConfig | CompareConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    from slidemap.io.atomic import write_text_atomic

    return write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
