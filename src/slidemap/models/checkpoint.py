"""Rebuilding a trained network from a slidemap checkpoint.

The file is read and its plain-data ``"slidemap"`` section checked by
:mod:`slidemap.io.checkpoint` (``torch.load(weights_only=True)``: no pickled code runs);
this module turns that section back into objects: the network (registry name, options,
weights), its input pipeline, normalisation statistics and threshold. The checkpoint is
the one source of truth for all of them: evaluation, prediction, export, figures and
``train --resume`` read them from here, never from a config file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from slidemap.data.normalization import ChannelStats
from slidemap.errors import CheckpointError, ConfigError
from slidemap.features import InputPipeline
from slidemap.io.checkpoint import (
    SECTION,
    check_weights,
    checkpoint_meta,
    model_state_dict,
    read_checkpoint,
    stored_part,
)
from slidemap.models.registry import build_model, check_model_size


@dataclass
class LoadedModel:
    """A network ready to predict, and what it needs around it.

    Attributes:
        model: the network in eval mode on CPU; ``forward((B, C, H, W)) -> logits (B, 1, H, W)``.
        pipeline: computes the model's input channels from a band stack.
        stats: normalisation applied after the pipeline.
        threshold: probability threshold of the landslide mask (validation best F1).
        meta: the checkpoint's whole ``"slidemap"`` section (plain data).
        path: the file it came from.
    """

    model: nn.Module
    pipeline: InputPipeline
    stats: ChannelStats
    threshold: float
    meta: dict[str, Any]
    path: Path

    @property
    def model_name(self) -> str:
        return str(self.meta["model"]["name"])


@dataclass(frozen=True)
class TrainedSetup:
    """What a checkpoint says about its model's input and architecture, without weights.

    Attributes:
        model_name: registry name. model_options: every option, resolved.
        pipeline: the input pipeline (band set, features, pixel size, elevation mode).
        stats: the normalisation statistics of the training split.
        threshold: the stored probability threshold.
    """

    model_name: str
    model_options: dict[str, Any]
    pipeline: InputPipeline
    stats: ChannelStats
    threshold: float


def trained_setup(meta: dict[str, Any], path: str | Path) -> TrainedSetup:
    """The :class:`TrainedSetup` of a checked ``"slidemap"`` section (``checkpoint_meta``).

    Raises:
        CheckpointError: a pipeline, statistics or model entry that cannot be rebuilt.
    """
    pipeline = stored_part(lambda: InputPipeline.from_dict(meta["pipeline"]), "pipeline", path)
    stats = stored_part(lambda: ChannelStats.from_dict(meta["normalization"]), "normalization", path)
    if len(stats.names) != int(meta["in_channels"]):
        raise CheckpointError(f"'{SECTION}.normalization' has statistics of {len(stats.names)} "
                              f"channels but the model takes {meta['in_channels']}", path)
    model = meta["model"]
    setup = TrainedSetup(str(model["name"]), dict(model.get("options", {})), pipeline, stats,
                         float(meta["threshold"]))
    if pipeline.in_channels != int(meta["in_channels"]):
        raise CheckpointError(
            f"pipeline gives {pipeline.in_channels} channels but the model takes {meta['in_channels']}",
            path,
        )
    return setup


def read_trained_setup(path: str | Path) -> TrainedSetup:
    """:func:`trained_setup` of the checkpoint file ``path`` (weights are not built)."""
    return trained_setup(checkpoint_meta(read_checkpoint(path), path), path)


def load_checkpoint(path: str | Path) -> LoadedModel:
    """Rebuild the trained network, its input pipeline, statistics and threshold.

    Args:
        path: a ``.ckpt`` written by ``slidemap train`` (``best.ckpt`` or ``last.ckpt``).

    Raises:
        CheckpointError: unreadable, unsafe, not a slidemap checkpoint, or weights that do
            not fit the recorded architecture (the message names the file).
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    meta = checkpoint_meta(checkpoint, path)
    setup = trained_setup(meta, path)
    in_channels = int(meta["in_channels"])
    try:  # options declaring a model beyond the memory budget are refused before building
        check_model_size(setup.model_name, in_channels, setup.model_options, path)
        model = build_model(setup.model_name, in_channels, **setup.model_options)
    except (ConfigError, TypeError, ValueError) as exc:
        problem = exc.problem if isinstance(exc, ConfigError) else str(exc)
        raise CheckpointError(f"cannot rebuild the model from the checkpoint: {problem}", path) from None
    weights = model_state_dict(checkpoint["state_dict"])
    check_weights(weights, path)
    try:
        model.load_state_dict(weights, strict=True)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"weights do not fit the recorded architecture: {first}", path) from None
    model.eval()
    return LoadedModel(
        model=model, pipeline=setup.pipeline, stats=setup.stats, threshold=setup.threshold,
        meta=meta, path=path,
    )
