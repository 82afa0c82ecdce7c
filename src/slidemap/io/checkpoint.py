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

import math
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from slidemap.errors import CheckpointError, SlidemapError

T = TypeVar("T")

FORMAT_VERSION = 1
SECTION = "slidemap"
REQUIRED_KEYS: tuple[str, ...] = (
    "format_version", "model", "in_channels", "pipeline", "normalization", "threshold", "config",
)
#: prefix of the network's parameters in the LightningModule's state dict.
MODEL_PREFIX = "model."


#: first bytes of the file kinds told apart by :func:`model_file_kind`.
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = b"\x80"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def model_file_kind(path: str | Path) -> str:
    """``"checkpoint"`` (a torch zip or pickle) or ``"onnx"`` (anything else: the ONNX parser
    judges it), told by the file's content, never by its name.

    Raises:
        CheckpointError: missing, a folder, empty, or plainly another kind of file (HDF5
            patch, GeoTIFF, text), naming it.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint file does not exist", path)
    if not path.is_file():
        raise CheckpointError("is a folder, not a checkpoint file", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read ({exc.strerror})", path) from None
    if not head:
        raise CheckpointError("file is empty (0 bytes); not a checkpoint", path)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTOCOL):
        return "checkpoint"
    if head.startswith(_HDF5_MAGIC):
        raise CheckpointError("is an HDF5 file (a Landslide4Sense patch?), not a checkpoint: give "
                              "the best.ckpt of a run or an exported .onnx", path)
    if head.startswith(_TIFF_MAGICS):
        raise CheckpointError("is a GeoTIFF, not a checkpoint: give the best.ckpt of a run or an "
                              "exported .onnx", path)
    return "onnx"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, loaded with ``weights_only=True`` on CPU.

    Raises:
        CheckpointError: missing file, not a torch file, corrupted, or content that is
            not tensors and plain data.
    """
    path = Path(path)
    if model_file_kind(path) != "checkpoint":
        raise CheckpointError("not a readable checkpoint (neither a torch zip nor a pickle; an "
                              "exported ONNX model needs --engine onnx)", path)
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
    check_stored_values(meta, path)
    if meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {meta['format_version']} is newer than this slidemap "
            f"understands ({FORMAT_VERSION}); upgrade slidemap", path
        )
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError("the checkpoint has no 'state_dict' (weights)", path)
    return meta


# ------------------------------------------------------------------ stored values
#: most input channels a stored model may declare (Landslide4Sense with every feature: 21).
MAX_IN_CHANNELS = 4096
#: largest ``size_multiple`` (``2 ** depth``) a stored model may declare.
MAX_SIZE_MULTIPLE = 2**16


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_model_entry(value: Any) -> bool:
    return (isinstance(value, Mapping) and isinstance(value.get("name"), str)
            and isinstance(value.get("options", {}), Mapping)
            and all(isinstance(k, str) for k in value.get("options", {})))


#: field -> (is the value acceptable, what it must be): the checks every stored model
#: value passes where it enters (checkpoints here, ONNX metadata in inference/onnx_export).
STORED_VALUE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format_version": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "threshold": (lambda v: _is_number(v) and 0.0 <= v <= 1.0, "a finite number in [0, 1]"),
    "in_channels": (lambda v: _is_int(v) and 1 <= v <= MAX_IN_CHANNELS,
                    f"an integer in [1, {MAX_IN_CHANNELS}]"),
    "size_multiple": (lambda v: _is_int(v) and 1 <= v <= MAX_SIZE_MULTIPLE,
                      f"an integer in [1, {MAX_SIZE_MULTIPLE}]"),
    "model": (_is_model_entry, "a mapping {name: str, options: mapping}"),
    "pipeline": (lambda v: isinstance(v, Mapping), "a mapping (the input pipeline)"),
    "normalization": (lambda v: isinstance(v, Mapping), "a mapping (normalisation statistics)"),
    "config": (lambda v: isinstance(v, Mapping), "a mapping (the experiment config)"),
    "band_set": (lambda v: isinstance(v, str), "a band set name"),
}


def check_stored_values(
    meta: Mapping[str, Any], path: str | Path | None, section: str = SECTION,
    checks: Mapping[str, tuple[Callable[[Any], bool], str]] = STORED_VALUE_CHECKS,
) -> None:
    """Type, range and finiteness of every known field of a stored model's metadata.

    Raises:
        CheckpointError: one line naming the file and the field (``'slidemap.threshold'
            must be a finite number in [0, 1], got nan``).
    """
    for key, value in meta.items():
        check = checks.get(key)
        if check is not None and not check[0](value):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise CheckpointError(f"'{section}.{key}' must be {check[1]}, got {shown}", path)


def stored_part(build: Callable[[], T], field: str, path: str | Path | None,
                section: str = SECTION) -> T:
    """``build()`` of one part of a stored model (pipeline, statistics), its errors named by
    the file and the field."""
    try:
        return build()
    except (SlidemapError, KeyError, TypeError, ValueError) as exc:
        problem = exc.problem if isinstance(exc, SlidemapError) else f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"'{section}.{field}': {problem}", path) from None


def model_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's parameters from a task's state dict (``model.`` prefix removed)."""
    return {k.removeprefix(MODEL_PREFIX): v for k, v in state_dict.items() if k.startswith(MODEL_PREFIX)}


def check_weights(weights: Mapping[str, Any], path: str | Path | None) -> None:
    """Every weight a tensor, every floating-point weight finite (a NaN weight makes every
    probability NaN, which would map nothing and say nothing)."""
    for name, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"weight {name!r} is a {type(value).__name__}, not a tensor", path)
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"weight {name!r} holds NaN or infinite values", path)
