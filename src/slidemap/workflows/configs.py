"""Loading a config as every command does: the schema (:mod:`slidemap.config`), then the
names that only the registries above the config layer know.

:func:`check_names` refuses an unknown model, model option, loss or feature, or a feature
that the band set cannot feed, with one line naming the config file, before any data is
read. :func:`load_experiment` and :func:`load_comparison` are the loaders of ``train``,
``compare``, ``demo`` and ``crossval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slidemap.bands import get_band_set
from slidemap.config import (
    CompareConfig,
    ExperimentConfig,
    load_compare_config,
    load_config,
    resolve_config_path,
)
from slidemap.config.validation import close_matches
from slidemap.data.augment import BandJitter
from slidemap.errors import BandSetError, ConfigError
from slidemap.features import get_feature, list_features
from slidemap.models import list_models, model_info
from slidemap.training.losses import list_losses


def check_names(config: ExperimentConfig, source: str | Path | None = "<config>") -> ExperimentConfig:
    """``config`` (returned) once its model, options, losses, features and band set exist.

    Raises:
        ConfigError: the first unknown name, with the closest valid ones; names ``source``.
    """
    models = list_models()
    if config.model.name not in models:
        raise ConfigError(
            f"unknown model 'model.name: {config.model.name}'{close_matches(config.model.name, models)}",
            source,
        )
    valid_options = list(model_info(config.model.name).options)
    for option in config.model.options:
        if option not in valid_options:
            raise ConfigError(
                f"model {config.model.name!r} has no option 'model.options.{option}'"
                f"{close_matches(option, valid_options)}; valid: {', '.join(valid_options)}",
                source,
            )
    losses = list_losses()
    for i, term in enumerate(config.loss):
        if term.name not in losses:
            raise ConfigError(
                f"unknown loss 'loss[{i}].name: {term.name}'{close_matches(term.name, losses)}", source
            )
    known = list_features()
    for name in config.data.features:
        if name not in known:
            raise ConfigError(
                f"unknown feature {name!r} in 'data.features'{close_matches(name, known)}", source
            )
    # the bands read (data.bands, a subset of the band set) must hold every feature's bands
    data = config.data
    keys = ("'data.band_set'/'data.bands'/'data.features'" if data.bands is not None
            else "'data.band_set'/'data.features'")
    try:
        band_set = get_band_set(data.band_set)
        if data.bands is not None:
            band_set = band_set.subset(data.bands)
        for name in data.features:
            get_feature(name).check(band_set)
    except BandSetError as exc:
        raise ConfigError(f"{keys}: {exc.problem}", source) from None
    try:  # the augmentations need bands of the files (optical units, red/green/blue, a DEM)
        BandJitter(get_band_set(data.band_set), data.augmentation.photometric,
                   data.augmentation.elevation)
    except ConfigError as exc:
        raise ConfigError(f"'data.augmentation': {exc.problem}", source) from None
    check_trainer_environment(config, source)
    return config


def check_trainer_environment(config: ExperimentConfig, source: str | Path | None = "<config>") -> None:
    """What the schema cannot know about ``trainer``, refused at load time rather than by
    Lightning once data is read: an accelerator this machine lacks (or fewer of its devices
    than asked for), a strategy Lightning does not know.

    Raises:
        ConfigError: naming ``source`` and the key.
    """
    import torch
    from lightning.pytorch.strategies import StrategyRegistry

    trainer = config.trainer
    if trainer.accelerator in ("gpu", "cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"'trainer.accelerator: {trainer.accelerator}' but this machine has "
                              "no CUDA GPU; use accelerator: auto or cpu", source)
        devices = trainer.devices
        wanted = max(devices) + 1 if isinstance(devices, list) else devices
        if isinstance(wanted, int) and wanted > count:
            raise ConfigError(f"'trainer.devices: {devices}' but this machine has {count} GPU(s)",
                              source)
    if trainer.accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("'trainer.accelerator: mps' but this machine has no Apple GPU", source)
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if trainer.strategy not in strategies:
        raise ConfigError(f"'trainer.strategy' {trainer.strategy!r} is not a Lightning strategy"
                          f"{close_matches(trainer.strategy, strategies)}", source)


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """:func:`~slidemap.config.load_config` and :func:`check_names`: a config ready to train."""
    config = load_config(path, overrides)
    return check_names(config, resolve_config_path(path))


def load_comparison(path: str | Path, overrides: Sequence[str] = ()) -> CompareConfig:
    """:func:`~slidemap.config.load_compare_config` and :func:`check_names` of every variant."""
    config = load_compare_config(path, overrides)
    source = resolve_config_path(path)
    check_names(config.base, source)
    for name, experiment in config.experiments(source).items():
        try:
            check_names(experiment, source)
        except ConfigError as exc:
            raise ConfigError(f"models[{name}]: {exc.problem}", source) from None
    return config

