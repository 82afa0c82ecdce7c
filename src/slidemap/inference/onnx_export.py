"""ONNX export of a checkpoint and an onnxruntime engine with the torch engine's interface.

The exported graph takes ``input (B, C, H, W) float32`` normalised channels and returns
``logits (B, 1, H, W)``, with batch, height and width dynamic. Height and width must be
multiples of the network's ``size_multiple`` (the traced graph has no padding);
:class:`OnnxEngine` pads other sizes exactly as the torch model does and crops back.

Everything needed to predict travels inside the file, as JSON under the metadata key
``slidemap`` (``metadata_props``): the input pipeline, the normalisation statistics, the
threshold, the model name and options, and ``size_multiple``.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from slidemap.errors import CheckpointError
from slidemap.inference.engine import TorchEngine, engine_metadata
from slidemap.io.atomic import write_bytes_atomic
from slidemap.io.checkpoint import (
    STORED_VALUE_CHECKS,
    check_stored_values,
    model_file_kind,
    stored_part,
)
from slidemap.io.resources import array_bytes, check_allocation

METADATA_KEY = "slidemap"
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_bytes(
    engine: TorchEngine, meta: dict[str, Any] | None = None, source: str | Path | None = None
) -> bytes:
    """Serialised ONNX model of ``engine`` with its metadata (``meta`` adds keys).

    Raises:
        CheckpointError: the exporter cannot trace the network (naming ``source``, the
            checkpoint it came from).
    """
    import onnx
    import torch

    size = 2 * engine.size_multiple
    dummy = torch.zeros(1, engine.pipeline.in_channels, size, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Tracer warnings about shape-dependent branches: exported inputs are multiples of
        # size_multiple, so the padding branch is correctly traced away. The legacy exporter
        # is chosen on purpose (it needs no onnxscript): its deprecation notices are known.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        for notice in ("You are using the legacy TorchScript-based ONNX export",
                       "The feature will be removed"):
            warnings.filterwarnings("ignore", message=notice, category=DeprecationWarning)
        try:
            _trace(engine, dummy, buffer)
        except Exception as exc:  # noqa: BLE001 - any exporter failure is one clear error
            raise CheckpointError(
                f"model '{engine.model_name}' cannot be exported to ONNX "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); use --engine torch",
                source,
            ) from None
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({**engine_metadata(engine), **(meta or {})})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _trace(engine: TorchEngine, dummy: Any, buffer: io.BytesIO) -> None:
    """The legacy (TorchScript) exporter: needs no onnxscript; dynamic batch, height, width."""
    import torch

    torch.onnx.export(
        engine.model,
        (dummy,),
        buffer,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                      OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}},
        opset_version=OPSET,
        dynamo=False,
    )


def export_onnx(checkpoint: str | Path, out: str | Path) -> Path:
    """Export the network of ``checkpoint`` to ``out`` (atomically) with its metadata.

    Raises:
        CheckpointError: the checkpoint cannot be loaded.
    """
    from slidemap.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    engine = TorchEngine(loaded.model, loaded.pipeline, loaded.stats, loaded.threshold, loaded.model_name)
    meta = {"model_options": loaded.meta["model"].get("options", {}), "checkpoint": str(checkpoint)}
    return write_bytes_atomic(out, export_bytes(engine, meta, checkpoint))


#: the checks of a checkpoint's values, with the model named by a string.
ONNX_VALUE_CHECKS = {**STORED_VALUE_CHECKS,
                     "model": (lambda v: isinstance(v, str) and bool(v), "a model name")}
#: keys the ``slidemap`` metadata of an exported model must hold.
METADATA_KEYS: tuple[str, ...] = ("pipeline", "normalization", "threshold", "model", "size_multiple")


def check_onnx_model(model: bytes, source: str | Path | None) -> None:
    """Before onnxruntime allocates anything: the bytes parse as ONNX, hold no reference to
    external data files, and declare weights within the memory budget.

    Raises:
        CheckpointError: not ONNX, or external data. ResourceError: too large.
    """
    import onnx

    try:
        proto = onnx.load_model_from_string(model)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(f"neither a slidemap checkpoint nor a readable ONNX model ({first})",
                              source) from None
    declared = 0
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise CheckpointError(
                f"ONNX weight {tensor.name!r} refers to an external data file; slidemap reads only "
                "self-contained models (export them with 'slidemap export')", source)
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 8
        declared += array_bytes(tuple(tensor.dims), itemsize)
    check_allocation(declared, "the ONNX model's weights", source)


def onnx_metadata(custom: dict[str, str], source: str | Path | None) -> dict[str, Any]:
    """The checked ``slidemap`` metadata of an ONNX model (pipeline, statistics, threshold...)."""
    raw = custom.get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(f"ONNX model has no '{METADATA_KEY}' metadata; export it with 'slidemap export'", source)
    try:
        meta = json.loads(raw)
    except ValueError:
        raise CheckpointError(f"the '{METADATA_KEY}' metadata of the ONNX model is not JSON", source) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"the '{METADATA_KEY}' metadata is a {type(meta).__name__}, not a mapping", source)
    missing = [key for key in METADATA_KEYS if key not in meta]
    if missing:
        raise CheckpointError(f"the '{METADATA_KEY}' metadata lacks {', '.join(missing)}", source)
    check_stored_values(meta, source, METADATA_KEY, ONNX_VALUE_CHECKS)
    return meta


class OnnxEngine:
    """An ONNX model run by onnxruntime on the CPU; same interface as :class:`TorchEngine`.

    Args:
        model: serialised ONNX model with ``slidemap`` metadata (see :func:`export_bytes`).
        source: the file it came from, for error messages.
    """

    def __init__(self, model: bytes, source: str | Path = "<memory>") -> None:
        import onnxruntime as ort

        from slidemap.data.normalization import ChannelStats
        from slidemap.features import InputPipeline

        check_onnx_model(model, source)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types on junk
            first = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise CheckpointError(f"neither a slidemap checkpoint nor a readable ONNX model ({first})",
                                  source) from None
        meta = onnx_metadata(self.session.get_modelmeta().custom_metadata_map, source)
        self.meta: dict[str, Any] = meta
        self.pipeline = stored_part(lambda: InputPipeline.from_dict(meta["pipeline"]), "pipeline",
                                    source, METADATA_KEY)
        self.stats = stored_part(lambda: ChannelStats.from_dict(meta["normalization"]),
                                 "normalization", source, METADATA_KEY)
        channels = self.session.get_inputs()[0].shape[1] if self.session.get_inputs() else None
        if len(self.stats.names) != self.pipeline.in_channels or (
                isinstance(channels, int) and channels != self.pipeline.in_channels):
            raise CheckpointError(
                f"the '{METADATA_KEY}' metadata describes {self.pipeline.in_channels} input channels, "
                f"its statistics {len(self.stats.names)} and the graph {channels}", source)
        self.threshold = float(meta["threshold"])
        self.model_name = str(meta["model"])
        self.size_multiple = int(meta["size_multiple"])

    @classmethod
    def from_file(cls, path: str | Path) -> OnnxEngine:
        """Load an exported ONNX model; a checkpoint (told by its content, whatever its name)
        is exported in memory first."""
        path = Path(path)
        if model_file_kind(path) == "checkpoint":
            engine = TorchEngine.from_checkpoint(path)
            return cls(export_bytes(engine, source=path), path)
        try:
            check_allocation(path.stat().st_size, "reading the ONNX model", path)
            data = path.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read ONNX model ({exc.strerror})", path) from None
        return cls(data, path)

    def predict_logits(self, batch: np.ndarray) -> np.ndarray:
        """``(B, C, H, W) float32`` → ``(B, 1, H, W) float32`` logits (any ``H``, ``W``)."""
        import torch

        from slidemap.models.blocks import pad_to_multiple

        height, width = batch.shape[-2:]
        padded = pad_to_multiple(torch.from_numpy(np.ascontiguousarray(batch, np.float32)), self.size_multiple)
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: padded.numpy()})
        return logits[..., :height, :width]
