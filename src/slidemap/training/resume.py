"""Checkpoint-first resume: ``train --resume`` continues what ``last.ckpt`` says was trained.

The checkpoint, not the (possibly edited) config file, decides the network and its input:
the model name and options, the input pipeline (band set, features, pixel size, elevation
mode) and the normalisation statistics are read from it. A config that disagrees with it
on any of these is refused with one line naming the config file, the field and the
checkpoint, instead of a ``load_state_dict`` traceback or, worse, a run that silently
continues on other inputs. How to train (epochs, learning rate, schedule, loss...) may change
on resume: that is what resuming is for.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from slidemap.config import ExperimentConfig, ModelConfig
from slidemap.data.normalization import ChannelStats
from slidemap.errors import ConfigError
from slidemap.features import InputPipeline
from slidemap.models import model_info
from slidemap.models.checkpoint import TrainedSetup, read_trained_setup

#: pipeline entry -> the config key that sets it.
PIPELINE_FIELDS: dict[str, str] = {
    "band_set": "data.band_set",
    "features": "data.features",
    "pixel_size_m": "data.pixel_size_m",
    "elevation": "data.elevation",
}


def _plain(value: Any) -> Any:
    """Tuples as lists, so options written by YAML and by the registry compare equal."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def disagreements(
    config: ExperimentConfig, pipeline: InputPipeline, setup: TrainedSetup
) -> list[tuple[str, Any, Any]]:
    """``(config key, config value, checkpoint value)`` of every field where ``config`` (and
    ``pipeline``, the input pipeline it builds) would make another network or input than the
    one ``setup`` was trained with."""
    found: list[tuple[str, Any, Any]] = []
    if config.model.name != setup.model_name:
        found.append(("model.name", config.model.name, setup.model_name))
    else:
        wanted = _plain({**model_info(config.model.name).options, **config.model.options})
        trained = _plain(setup.model_options)
        for key in sorted(set(wanted) | set(trained)):
            if wanted.get(key) != trained.get(key):
                found.append((f"model.options.{key}", wanted.get(key), trained.get(key)))
    configured = pipeline.to_dict()
    stored = setup.pipeline.to_dict()
    for entry, key in PIPELINE_FIELDS.items():
        if configured[entry] != stored[entry]:
            shown = (configured[entry], stored[entry])
            if entry == "band_set":  # name them; the definitions are long
                shown = (configured[entry]["name"], stored[entry]["name"])
                if shown[0] == shown[1]:
                    shown = (f"{shown[0]} (edited)", shown[1])
            found.append((key, *shown))
    return found


def resume_setup(
    config: ExperimentConfig, pipeline: InputPipeline, checkpoint: str | Path,
    source: str | Path | None = None,
) -> tuple[ExperimentConfig, InputPipeline, ChannelStats]:
    """The config, pipeline and statistics a resumed run continues with, from ``checkpoint``.

    Args:
        config: the experiment as loaded now (``--config`` plus ``--set``).
        pipeline: the input pipeline ``config`` builds.
        checkpoint: the run's ``last.ckpt``.
        source: the config file, named in the error.

    Returns:
        ``config`` with its model replaced by the checkpoint's (options fully resolved), the
        checkpoint's pipeline and its normalisation statistics.

    Raises:
        ConfigError: ``config`` disagrees with the checkpoint on the model, its options, the
            band set or the pipeline (one line: the field, both values, both files).
        CheckpointError: the checkpoint is unreadable or unsafe.
    """
    setup = read_trained_setup(checkpoint)
    found = disagreements(config, pipeline, setup)
    if found:
        key, configured, trained = found[0]
        more = f" (and {len(found) - 1} more field(s))" if len(found) > 1 else ""
        raise ConfigError(
            f"{key!r} is {configured!r} but the checkpoint {checkpoint} was trained with "
            f"{trained!r}{more}; resume with the run's own config.yaml, or train into a new --out",
            source,
        )
    model = ModelConfig(setup.model_name, dict(setup.model_options))
    return dataclasses.replace(config, model=model), setup.pipeline, setup.stats
