"""Reading slidemap checkpoints safely: tensors and plain data only, never pickled code.

This module reads the file and checks its plain-data section; it knows nothing of networks.
Rebuilding the trained model from it is :func:`slidemap.models.checkpoint.load_checkpoint`.

A slidemap checkpoint is a Lightning ``.ckpt`` whose ``"slidemap"`` section (written by
:meth:`slidemap.training.task.SegmentationTask.on_save_checkpoint`) holds everything a
prediction needs, as plain data:

=================  =======================================================================
key                content
=================  =======================================================================
format_version     :data:`FORMAT_VERSION`
model              ``{"name": str, "options": dict}`` for :func:`slidemap.models.build_model`
in_channels        int, the model's input channels
pipeline           :meth:`slidemap.features.InputPipeline.to_dict` (band set, features, ...)
normalization      :meth:`slidemap.data.normalization.ChannelStats.to_dict`
threshold          float, probability threshold of the landslide mask
config             the resolved experiment config (:meth:`ExperimentConfig.to_dict`)
band_set           the band set's name (its definition is inside ``pipeline``)
=================  =======================================================================

The file is read with ``torch.load(weights_only=True)``, so an untrusted file cannot run
code; Lightning's own entries (optimiser, loops, callbacks) are kept to plain types by the
task, so resuming with ``ckpt_path`` also works under ``weights_only=True``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from slidemap.errors import CheckpointError

FORMAT_VERSION = 1
SECTION = "slidemap"
REQUIRED_KEYS: tuple[str, ...] = (
    "format_version", "model", "in_channels", "pipeline", "normalization", "threshold", "config",
)
#: prefix of the network's parameters in the LightningModule's state dict.
MODEL_PREFIX = "model."


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, loaded with ``weights_only=True`` on CPU.

    Raises:
        CheckpointError: missing file, not a torch file, corrupted, or content that is
            not tensors and plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise CheckpointError(
            f"not a safe slidemap checkpoint (it holds more than tensors and plain data: {first})",
            path,
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch's legacy loader raises anything on junk bytes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"not a readable checkpoint (corrupted or truncated?): {first}", path) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"not a checkpoint: holds a {type(checkpoint).__name__}, not a dict", path)
    return checkpoint


def checkpoint_meta(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``"slidemap"`` section, checked for the required keys."""
    meta = checkpoint.get(SECTION)
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"no '{SECTION}' section: not written by 'slidemap train' (a plain Lightning or "
            "PyTorch checkpoint cannot be used without its pipeline and statistics)", path
        )
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise CheckpointError(f"the '{SECTION}' section lacks {', '.join(missing)}", path)
    if meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {meta['format_version']} is newer than this slidemap "
            f"understands ({FORMAT_VERSION}); upgrade slidemap", path
        )
    if "state_dict" not in checkpoint:
        raise CheckpointError("the checkpoint has no 'state_dict' (weights)", path)
    return meta


def model_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's parameters from a task's state dict (``model.`` prefix removed)."""
    return {k.removeprefix(MODEL_PREFIX): v for k, v in state_dict.items() if k.startswith(MODEL_PREFIX)}
