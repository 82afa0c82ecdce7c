"""ONNX export of a checkpoint and an onnxruntime engine with the torch engine's interface.

The exported graph takes ``input (B, C, H, W) float32`` normalised channels and returns
``logits (B, 1, H, W)``, with batch, height and width dynamic. Height and width must be
multiples of the network's ``size_multiple`` (the traced graph has no padding);
:class:`OnnxEngine` pads other sizes exactly as the torch model does and crops back.

Everything needed to predict travels inside the file, as JSON under the metadata key
``slidemap`` (``metadata_props``): the input pipeline, the normalisation statistics, the
threshold, the model name and options, ``size_multiple`` and ``precision``.

**int8.** :func:`quantize_int8` quantizes the float32 graph statically with onnxruntime:
QDQ format, per-channel symmetric int8 weights, uint8 activations whose ranges are the
min/max seen on calibration inputs (a few hundred training patches, normalised as the
model's input, :func:`calibration_inputs`). Every operator onnxruntime can quantize is
quantized, CBAM's included. The calibration source, patch count and seed are stored in the
metadata (``calibration``). How close it stays to float32: ``docs/speed.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from slidemap.errors import CheckpointError, ConfigError
from slidemap.inference.engine import EngineSpec, TorchEngine, engine_metadata, register_engine
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
#: patches drawn (seeded) from the calibration folder for int8 quantization.
CALIBRATION_PATCHES = 256
CALIBRATION_SEED = 0


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
    _set_metadata(model, {**engine_metadata(engine), "precision": "fp32", **(meta or {})})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _set_metadata(model: Any, meta: dict[str, Any]) -> None:
    """Write ``meta`` as JSON under :data:`METADATA_KEY` (replacing an earlier value)."""
    for index in reversed(range(len(model.metadata_props))):
        if model.metadata_props[index].key == METADATA_KEY:
            del model.metadata_props[index]
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(meta)


def _metadata(model_bytes: bytes) -> dict[str, Any]:
    import onnx

    model = onnx.load_from_string(model_bytes)
    raw = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    return {} if raw is None else json.loads(raw)


def calibration_inputs(engine: Any, data: str | Path, count: int = CALIBRATION_PATCHES,
                       seed: int = CALIBRATION_SEED) -> list[np.ndarray]:
    """Up to ``count`` patches of ``data`` (a Landslide4Sense root: its training split; or
    one folder of patches), drawn with ``seed``, as the model's normalised input: each
    ``(1, C, H, W) float32``.

    Raises:
        InputError: no patches there, or a patch that cannot be read (naming the file).
        ConfigError: ``count < 1``.
    """
    from slidemap.data.l4s import dataset_layout, find_patches, read_image
    from slidemap.inference.engine import prepare_input

    if count < 1:
        raise ConfigError(f"calibration needs at least one patch, got {count}")
    split = "train" if dataset_layout(data) in ("root", "public") else None
    refs = find_patches(data, split=split, require_masks=False)
    chosen = np.random.default_rng(seed).permutation(len(refs))[:count]
    n_bands = len(engine.pipeline.band_set)
    return [prepare_input(engine, read_image(refs[i].image, n_bands))[None] for i in sorted(chosen)]


class _DropQuantizerRecords(logging.Filter):
    """Drops the advice onnxruntime's quantizer logs on the root logger (pre-processing
    tips, which :func:`quantize_int8` follows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    quiet = _DropQuantizerRecords()
    root.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="onnxruntime")
            yield
    finally:
        root.removeFilter(quiet)


def quantize_int8(model_bytes: bytes, inputs: list[np.ndarray], provenance: dict[str, Any] | None = None) -> bytes:
    """The float32 graph ``model_bytes`` quantized statically to int8 (see the module
    docstring), calibrated on ``inputs`` (each ``(1, C, H, W)``); its metadata gains
    ``precision: int8`` and ``calibration`` (``provenance`` plus the patch count)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {INPUT_NAME: item}

    meta = _metadata(model_bytes)
    with tempfile.TemporaryDirectory(prefix="slidemap-int8-") as tmp, _quiet_quantizer():
        source, prepared, target = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model_bytes)
        # constant folding and shape inference first (onnxruntime's advice): the exporter's
        # folded BatchNorm biases become initializers, which the quantizer needs
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = onnx.load(str(target))
    _set_metadata(model, {**meta, "precision": "int8",
                          "calibration": {**(provenance or {}), "patches": len(inputs)}})
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


def export_onnx(checkpoint: str | Path, out: str | Path, precision: str = "fp32",
                calibration: str | Path | None = None, calibration_patches: int = CALIBRATION_PATCHES) -> Path:
    """Export the network of ``checkpoint`` to ``out`` (atomically) with its metadata;
    ``precision="int8"`` quantizes it, calibrated on ``calibration_patches`` patches of the
    folder ``calibration`` (required then).

    Raises:
        CheckpointError: the checkpoint cannot be loaded.
        ConfigError: a precision other than fp32/int8, or int8 without calibration data.
        InputError: unreadable calibration patches.
    """
    from slidemap.models.checkpoint import load_checkpoint

    if precision not in ("fp32", "int8"):
        raise ConfigError(f"ONNX export writes fp32 or int8 models, not {precision!r} "
                          "(bf16 runs on the torch engine from the checkpoint itself)")
    loaded = load_checkpoint(checkpoint)
    engine = TorchEngine(loaded.model, loaded.pipeline, loaded.stats, loaded.threshold, loaded.model_name)
    meta = {"model_options": loaded.meta["model"].get("options", {}), "checkpoint": str(checkpoint)}
    data = export_bytes(engine, meta, checkpoint)
    if precision == "int8":
        data = _quantized(engine, data, calibration, checkpoint, calibration_patches)
    return write_bytes_atomic(out, data)


def _quantized(engine: Any, model_bytes: bytes, calibration: str | Path | None, source: str | Path,
               count: int = CALIBRATION_PATCHES) -> bytes:
    if calibration is None:
        raise ConfigError(
            "int8 needs calibration data: give --calibration DIR (a folder of training patches), "
            "or an int8 export (slidemap export --precision int8 --calibration DIR)", source)
    inputs = calibration_inputs(engine, calibration, count)
    provenance = {"source": str(calibration), "seed": CALIBRATION_SEED, "method": "minmax"}
    return quantize_int8(model_bytes, inputs, provenance)


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

    ``precision`` is the model's own (``fp32``, or ``int8`` for a quantized export). The
    session runs ``torch.get_num_threads()`` intra-op threads.

    Args:
        model: serialised ONNX model with ``slidemap`` metadata (see :func:`export_bytes`).
        source: the file it came from, for error messages.
    """

    kind = "onnx"

    def __init__(self, model: bytes, source: str | Path = "<memory>") -> None:
        import onnxruntime as ort
        import torch

        from slidemap.data.normalization import ChannelStats
        from slidemap.features import InputPipeline

        check_onnx_model(model, source)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # as many threads as torch uses (all cores by default; one in a Dask worker), so the
        # two runtimes share one setting and workers do not oversubscribe the machine
        options.intra_op_num_threads = torch.get_num_threads()
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
        self.precision = str(meta.get("precision", "fp32"))
        self.model_bytes = model
        self.source = source

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


@register_engine("onnx", "fp32", "onnxruntime, the exported float32 graph")
def _onnx_fp32(spec: EngineSpec) -> OnnxEngine:
    engine = OnnxEngine.from_file(spec.path)
    if engine.precision != "fp32":
        raise ConfigError(f"is an {engine.precision} model; run it with --precision {engine.precision}",
                          spec.path)
    return engine


@register_engine("onnx", "int8", "onnxruntime, static int8 quantization (QDQ, per-channel weights)")
def _onnx_int8(spec: EngineSpec) -> OnnxEngine:
    engine = OnnxEngine.from_file(spec.path)
    if engine.precision == "int8":
        return engine
    return OnnxEngine(_quantized(engine, engine.model_bytes, spec.calibration, spec.path), spec.path)
