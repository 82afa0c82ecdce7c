"""Inference engines: what turns a normalised batch into landslide logits.

An engine bundles a network with what a checkpoint says about its input (the
:class:`~slidemap.features.InputPipeline`, the normalisation statistics, the threshold), so
scene mapping, patch prediction and the Dask workers are written once against
:class:`Engine` and run the same with PyTorch (:class:`TorchEngine`) or onnxruntime
(:class:`~slidemap.inference.onnx_export.OnnxEngine`).

Engines are registered by runtime and numeric precision (:func:`register_engine`):

=========  =========  ===========================================================
kind       precision  what runs
=========  =========  ===========================================================
``torch``  ``fp32``   BatchNorm folded, ``channels_last``, fused CBAM kernel
``torch``  ``bf16``   the same network in bfloat16 (oneDNN's bf16 convolutions)
``onnx``   ``fp32``   the exported graph in onnxruntime
``onnx``   ``int8``   the graph quantized statically (QDQ, per-channel weights)
=========  =========  ===========================================================

``auto`` (:func:`choose_engine`) times the engines registered for a precision on one input
of the job's shape and keeps the faster. Accuracy of each precision against fp32:
``docs/speed.md``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from slidemap.errors import ConfigError
from slidemap.io.checkpoint import model_file_kind

if TYPE_CHECKING:
    import torch

    from slidemap.data.normalization import ChannelStats
    from slidemap.features import InputPipeline

log = logging.getLogger(__name__)

EngineKind = Literal["torch", "onnx"]
ENGINE_KINDS: tuple[str, ...] = ("torch", "onnx")
#: ``--engine auto``: the faster of the engines registered for the precision (:func:`choose_engine`).
AUTO = "auto"
Precision = Literal["fp32", "bf16", "int8"]
#: numeric precisions of inference, ``--precision`` (fp32 the default).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")


class Engine(Protocol):
    """What inference needs from a model.

    Attributes:
        pipeline: computes the model's input channels from a band stack.
        stats: normalisation statistics of those channels.
        threshold: probability above which a pixel is a landslide (from the checkpoint).
        model_name: registry name, for summaries.
        size_multiple: the network's input height and width should be multiples of this
            (``2**depth`` for UNet); windows are aligned to it so predictions do not
            depend on where a window starts.
        kind, precision: the registry key of the engine (``"torch"``, ``"fp32"``...).
    """

    pipeline: InputPipeline
    stats: ChannelStats
    threshold: float
    model_name: str
    size_multiple: int
    kind: str
    precision: str

    def predict_logits(self, batch: np.ndarray) -> np.ndarray:
        """``(B, C, H, W) float32`` normalised input → ``(B, 1, H, W) float32`` logits."""
        ...


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, float32."""
    return (0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float32, copy=False)))).astype(np.float32)


def prepare_input(engine: Engine, bands: np.ndarray) -> np.ndarray:
    """``(C_bands, H, W)`` stored units → ``(C_in, H, W)`` normalised model input, float32."""
    return engine.stats.apply(engine.pipeline(bands))


class TorchEngine:
    """A PyTorch network in eval mode, run without gradients on ``device``.

    On the CPU the network is run in its inference form
    (:func:`~slidemap.models.fuse.optimize_for_inference`: BatchNorm folded into the
    convolutions, ``channels_last``; CBAM through its fused kernel where that is built),
    1.2-1.9x faster than the plain eval model and equal to it within 1e-5 (docs/speed.md).
    With ``precision="bf16"`` the inference form is cast to bfloat16 (weights and
    activations; input and logits stay float32 at the interface): 2x the float32 speed on
    CPUs with AVX512-BF16 or AMX, far slower where bfloat16 is emulated. ``model`` itself
    is not modified.

    Args:
        model: ``(B, C, H, W) -> (B, 1, H, W)`` logits.
        pipeline, stats, threshold, model_name: see :class:`Engine`.
        device: torch device string.
        optimize: use the inference form (CPU only; ``False``: the plain eval model).
        precision: ``"fp32"`` or ``"bf16"``.
    """

    kind = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        pipeline: InputPipeline,
        stats: ChannelStats,
        threshold: float = 0.5,
        model_name: str = "",
        device: str = "cpu",
        optimize: bool = True,
        precision: str = "fp32",
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"the torch engine runs fp32 or bf16, not {precision!r}")
        #: the trained network, as given (what ONNX export traces).
        self.model = model.eval().to(device)
        self.optimized = optimize and device == "cpu"
        self.pipeline = pipeline
        self.stats = stats
        self.threshold = float(threshold)
        self.model_name = model_name or type(model).__name__
        self.size_multiple = int(getattr(model, "size_multiple", 1))
        self.device = device
        self.precision = precision

    @functools.cached_property
    def runner(self) -> torch.nn.Module:
        """What :meth:`predict_logits` runs: the inference form, built on first use (an
        engine that is only exported to ONNX never builds it)."""
        import torch

        from slidemap.models.fuse import optimize_for_inference

        runner = optimize_for_inference(self.model) if self.optimized else self.model
        if self.precision == "bf16":
            import copy

            runner = (runner if self.optimized else copy.deepcopy(runner)).to(torch.bfloat16)
        return runner

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", precision: str = "fp32") -> TorchEngine:
        """Load a slidemap checkpoint (weights only, no pickled code)."""
        from slidemap.models.checkpoint import load_checkpoint

        loaded = load_checkpoint(path)
        return cls(loaded.model, loaded.pipeline, loaded.stats, loaded.threshold, loaded.model_name, device,
                   precision=precision)

    def predict_logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, dtype)
            if self.optimized:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            # (B, 1, H, W) is laid out alike in both memory formats: no copy here
            return self.runner(tensor).float().cpu().numpy()

    def metadata(self) -> dict[str, Any]:
        """Plain data describing the engine (stored in ONNX exports and summaries)."""
        return engine_metadata(self)


def engine_metadata(engine: Engine) -> dict[str, Any]:
    """``pipeline``, ``normalization``, ``threshold``, ``model``, ``size_multiple`` as plain data."""
    return {
        "pipeline": engine.pipeline.to_dict(),
        "normalization": engine.stats.to_dict(),
        "threshold": engine.threshold,
        "model": engine.model_name,
        "size_multiple": engine.size_multiple,
    }


@dataclass(frozen=True)
class EngineSpec:
    """How to build an engine anywhere (a Dask worker too): a file, a kind and a precision.

    Attributes:
        path: a slidemap checkpoint or an exported ``.onnx`` model (``onnx`` only; a
            checkpoint is exported on the fly, see :func:`load_engine`).
        kind: ``"torch"`` or ``"onnx"`` (``"auto"`` is resolved by :func:`choose_engine`
            before a spec is built).
        device: torch device (``torch`` only).
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (see the registry above).
        calibration: a folder of training patches for an ``int8`` engine built from a
            checkpoint or a float32 ``.onnx`` (an int8 export carries its calibration).
    """

    path: Path
    kind: EngineKind = "torch"
    device: str = "cpu"
    precision: Precision = "fp32"
    calibration: Path | None = None


EngineBuilder = Callable[[EngineSpec], Engine]


@dataclass(frozen=True)
class EngineEntry:
    """One registered engine: ``build(spec)`` makes it; ``description`` is one line."""

    kind: str
    precision: str
    build: EngineBuilder
    description: str


_ENGINES: dict[tuple[str, str], EngineEntry] = {}
#: modules that register engines when imported (the torch ones live here).
_ENGINE_MODULES = ("slidemap.inference.onnx_export",)


def register_engine(kind: str, precision: str, description: str) -> Callable[[EngineBuilder], EngineBuilder]:
    """Decorator registering ``build(spec) -> Engine`` under ``(kind, precision)``."""
    if precision not in PRECISIONS:
        raise TypeError(f"register_engine: unknown precision {precision!r}")

    def decorator(build: EngineBuilder) -> EngineBuilder:
        if (kind, precision) in _ENGINES:
            raise TypeError(f"register_engine: ({kind!r}, {precision!r}) is registered twice")
        _ENGINES[(kind, precision)] = EngineEntry(kind, precision, build, description)
        return build

    return decorator


def registered_engines() -> list[EngineEntry]:
    """Every registered engine, in registration order (torch first)."""
    import importlib

    for module in _ENGINE_MODULES:
        importlib.import_module(module)
    return list(_ENGINES.values())


def engine_entry(kind: str, precision: str) -> EngineEntry:
    """The entry of ``(kind, precision)``; :class:`ConfigError` naming the valid pairs."""
    entries = {(e.kind, e.precision): e for e in registered_engines()}
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if (kind, precision) not in entries:
        kinds = [k for k, p in entries if p == precision]
        raise ConfigError(
            f"precision {precision} does not run on the {kind} engine; it runs on: "
            f"{', '.join(kinds)} (--engine {kinds[0] if kinds else AUTO})")
    return entries[(kind, precision)]


@register_engine("torch", "fp32", "PyTorch, BatchNorm folded, channels_last, fused CBAM")
def _torch_fp32(spec: EngineSpec) -> Engine:
    return TorchEngine.from_checkpoint(spec.path, device=spec.device)


@register_engine("torch", "bf16", "PyTorch in bfloat16 (oneDNN)")
def _torch_bf16(spec: EngineSpec) -> Engine:
    return TorchEngine.from_checkpoint(spec.path, device=spec.device, precision="bf16")


def load_engine(spec: EngineSpec) -> Engine:
    """Build (once per process: cached by path, modification time, kind and precision) the
    engine of ``spec``.

    Raises:
        ConfigError: an unknown kind or precision, or a pair not registered.
    """
    if spec.kind not in ENGINE_KINDS:
        raise ConfigError(f"engine must be one of {', '.join(ENGINE_KINDS)}, got {spec.kind!r}")
    engine_entry(spec.kind, spec.precision)
    path = Path(spec.path)
    mtime = path.stat().st_mtime_ns if path.exists() else 0
    return _load_engine_cached(path.resolve(), mtime, spec)


@functools.lru_cache(maxsize=4)
def _load_engine_cached(path: Path, mtime_ns: int, spec: EngineSpec) -> Engine:
    del mtime_ns  # part of the cache key only: a rewritten file is loaded again
    return engine_entry(spec.kind, spec.precision).build(spec)


def candidate_kinds(precision: str, model: str | Path | None = None) -> list[str]:
    """The engine kinds that can run ``model`` at ``precision``: every kind registered for
    the precision, only ``onnx`` for an exported ONNX model (told by its content, not its
    name).

    Raises:
        ConfigError: an unknown precision, or none of the kinds runs it (naming the valid pairs).
        CheckpointError: ``model`` is missing, empty or plainly no model.
    """
    kinds = [e.kind for e in registered_engines() if e.precision == precision]
    if model is not None and model_file_kind(model) == "onnx":
        kinds = [k for k in kinds if k == "onnx"]
    if not kinds:
        engine_entry("onnx", precision)  # raises the error naming the choices
    return kinds


def choose_engine(spec: EngineSpec, batch: int, side: int, repeats: int = 2) -> tuple[EngineSpec, dict[str, float]]:
    """``--engine auto``: the spec, with ``kind`` set, of the fastest engine registered for
    ``spec.precision`` (:func:`candidate_kinds`), timed on a zero input of
    ``(batch, C, side, side)`` (side rounded up to the network's ``size_multiple``; one
    warm-up run each, then ``repeats`` interleaved runs, the best of each); and the seconds
    measured per kind (empty when only one engine qualifies).
    """
    kinds = candidate_kinds(spec.precision, spec.path)

    def with_kind(kind: str) -> EngineSpec:
        return EngineSpec(spec.path, kind, spec.device, spec.precision, spec.calibration)  # type: ignore[arg-type]

    if len(kinds) == 1:
        return with_kind(kinds[0]), {}
    candidates = {kind: load_engine(with_kind(kind)) for kind in kinds}
    first = next(iter(candidates.values()))
    side = -(-side // first.size_multiple) * first.size_multiple
    sample = np.zeros((batch, first.pipeline.in_channels, side, side), dtype=np.float32)
    seconds = {kind: float("inf") for kind in kinds}
    for engine in candidates.values():
        engine.predict_logits(sample)
    for _ in range(repeats):
        for kind, engine in candidates.items():
            started = time.perf_counter()
            engine.predict_logits(sample)
            seconds[kind] = min(seconds[kind], time.perf_counter() - started)
    fastest = min(seconds, key=seconds.__getitem__)
    log.debug("--engine auto chose %s (%s for a %s input)", fastest,
             ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in seconds.items()), "x".join(map(str, sample.shape)))
    return with_kind(fastest), {k: round(v, 4) for k, v in seconds.items()}


EngineSource = Engine | EngineSpec


def resolve_engine(source: EngineSource) -> Engine:
    """An engine object is used as it is; an :class:`EngineSpec` is loaded (cached)."""
    return load_engine(source) if isinstance(source, EngineSpec) else source
