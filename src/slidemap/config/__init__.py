"""Experiment configuration: the typed schema, its validation, and YAML loading.

Split by job: :mod:`~slidemap.config.schema` (the dataclasses), :mod:`~slidemap.config.validation`
(plain data checked against them by pydantic, one-line errors, the threshold check),
:mod:`~slidemap.config.loading` (YAML files, ``--set`` overrides, saving) and
:mod:`~slidemap.config.paths` (packaged configs, data paths relative to a checkout).

This layer sits above ``io`` and below ``data``: it knows nothing of the registries of
models, losses and features; :mod:`slidemap.workflows.configs` adds those checks.
"""

from slidemap.config.loading import (
    apply_overrides,
    config_text,
    load_compare_config,
    load_config,
    parse_override,
    save_config,
)
from slidemap.config.paths import resolve_config_path, resolve_data_path
from slidemap.config.schema import (
    PAPER_FEATURES,
    ActivationsConfig,
    AugmentationConfig,
    AveragingConfig,
    CompareConfig,
    CropAugment,
    DataConfig,
    ElevationAugment,
    ExperimentConfig,
    HoldoutConfig,
    LossTerm,
    ModelConfig,
    ModelVariant,
    OptimConfig,
    PanelsConfig,
    PhotometricAugment,
    ScheduleConfig,
    TrainerConfig,
    experiment_from_dict,
)
from slidemap.config.validation import check_threshold

__all__ = [
    "PAPER_FEATURES",
    "ActivationsConfig",
    "AugmentationConfig",
    "AveragingConfig",
    "CompareConfig",
    "CropAugment",
    "DataConfig",
    "ElevationAugment",
    "ExperimentConfig",
    "HoldoutConfig",
    "LossTerm",
    "ModelConfig",
    "ModelVariant",
    "OptimConfig",
    "PanelsConfig",
    "PhotometricAugment",
    "ScheduleConfig",
    "TrainerConfig",
    "apply_overrides",
    "check_threshold",
    "config_text",
    "experiment_from_dict",
    "load_compare_config",
    "load_config",
    "parse_override",
    "resolve_config_path",
    "resolve_data_path",
    "save_config",
]
