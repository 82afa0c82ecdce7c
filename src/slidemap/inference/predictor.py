"""The one path from a band stack to landslide probabilities.

Every command that turns imagery into probabilities — ``predict`` (scenes and patches),
``evaluate``, ``compare`` and the demo — does it through a :class:`Predictor`:
:meth:`Predictor.prepare` (input pipeline, then normalisation) and
:meth:`Predictor.probabilities` (the engine's logits through a sigmoid). Nothing else in
slidemap calls an engine's ``predict_logits`` or a network's ``forward`` to make
probabilities, so ``evaluate`` scores exactly what ``predict`` ships (a test checks it).

Test-time augmentation or an ensemble is a :class:`Predictor` subclass (or wrapper) that
overrides :meth:`Predictor.probabilities` (averaging members in probability space) and
reports itself in :meth:`Predictor.record`; everything upstream is unchanged.

Which runtime runs the network, and at which numeric precision, is one choice
(:data:`ENGINE_CHOICES`, :data:`~slidemap.inference.engine.PRECISIONS`), made by
:func:`engine_spec` and recorded as the kind and precision actually used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from slidemap.data.normalization import ChannelStats
from slidemap.errors import ConfigError
from slidemap.features import InputPipeline
from slidemap.inference.engine import (
    ENGINE_KINDS,
    Engine,
    EngineKind,
    EngineSpec,
    choose_engine,
    engine_entry,
    load_engine,
    prepare_input,
    registered_engines,
    sigmoid,
)

EngineChoice = Literal["auto", "torch", "onnx"]
#: ``--engine`` values: ``auto`` resolves by input kind and precision (:func:`engine_spec`).
ENGINE_CHOICES: tuple[str, ...] = ("auto", *ENGINE_KINDS)
#: What ``auto`` runs on batches of 128 px patches when several engines run the precision:
#: the optimised torch engine, measured 1.0-1.4x ONNX Runtime's speed there for every model
#: (docs/speed.md). On scene windows the faster engine depends on the model and the machine
#: (the fused CBAM kernel, oneDNN's and ONNX Runtime's thread scaling), so ``auto`` times
#: the candidates on one window (:func:`~slidemap.inference.engine.choose_engine`).
AUTO_PATCH_ENGINE: EngineKind = "torch"


def resolve_engine_kind(choice: str, inputs: Literal["patches", "scene"], precision: str = "fp32"
                        ) -> EngineKind | None:
    """The engine kind of ``choice`` (``auto``, ``torch`` or ``onnx``) for ``inputs`` at
    ``precision``; ``None`` when ``auto`` must time the candidates (scenes, several engines).

    Raises:
        ConfigError: an unknown choice or precision, or a kind that does not run it.
    """
    if choice == "auto":
        kinds = [e.kind for e in registered_engines() if e.precision == precision]
        if not kinds:
            engine_entry(ENGINE_KINDS[0], precision)  # raises, naming the valid precisions
        if len(kinds) == 1:
            return kinds[0]  # type: ignore[return-value]
        return AUTO_PATCH_ENGINE if inputs == "patches" else None
    if choice not in ENGINE_KINDS:
        raise ConfigError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, got {choice!r}")
    engine_entry(choice, precision)  # a kind that does not run the precision: one clear error
    return choice  # type: ignore[return-value]


def engine_spec(checkpoint: str | Path, choice: str = "auto", inputs: Literal["patches", "scene"] = "patches",
                precision: str = "fp32", calibration: str | Path | None = None, device: str = "cpu",
                window: int = 512) -> EngineSpec:
    """The :class:`EngineSpec` ``predict``, ``evaluate`` and ``compare`` run: ``choice`` and
    ``precision`` resolved (:func:`resolve_engine_kind`; ``auto`` on scenes times the
    candidates on one ``window``² input), ``calibration`` kept for int8."""
    calibration = None if calibration is None else Path(calibration)
    kind = resolve_engine_kind(choice, inputs, precision)
    if Path(checkpoint).suffix.lower() == ".onnx" and choice == "auto":
        kind = "onnx"  # the only engine an exported model runs on
    if kind is None:
        timed, _ = choose_engine(EngineSpec(Path(checkpoint), precision=precision,  # type: ignore[arg-type]
                                            calibration=calibration), batch=1, side=window)
        kind = timed.kind
    return EngineSpec(Path(checkpoint), kind, resolve_device(device) if kind == "torch" else "cpu",
                      precision, calibration)  # type: ignore[arg-type]


def resolve_device(device: str = "auto") -> str:
    """``auto`` = ``cuda`` when available, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def engine_kind(engine: Engine) -> str:
    """``torch``, ``onnx``, or the class name of another engine."""
    return str(getattr(engine, "kind", type(engine).__name__))


class Predictor:
    """Landslide probabilities from one engine.

    Args:
        engine: the network and what its checkpoint says about its input.
        kind: how the engine runs (``torch``, ``onnx``), for records; ``None`` infers it.
        source: the checkpoint (or ONNX file) it was loaded from, for records.

    The engine's ``pipeline``, ``stats``, ``threshold``, ``model_name`` and
    ``size_multiple`` are available on the predictor too.
    """

    def __init__(self, engine: Engine, kind: str | None = None, source: str | Path | None = None) -> None:
        self.engine = engine
        self.kind = kind or engine_kind(engine)
        self.source = None if source is None else Path(source)

    @property
    def pipeline(self) -> InputPipeline:
        return self.engine.pipeline

    @property
    def stats(self) -> ChannelStats:
        return self.engine.stats

    @property
    def threshold(self) -> float:
        return float(self.engine.threshold)

    @property
    def model_name(self) -> str:
        return self.engine.model_name

    @property
    def size_multiple(self) -> int:
        return int(self.engine.size_multiple)

    def prepare(self, bands: np.ndarray) -> np.ndarray:
        """``(C_bands, H, W)`` stored units -> ``(C_in, H, W) float32`` normalised model input."""
        return prepare_input(self.engine, bands)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """``(B, C_in, H, W) float32`` normalised input -> ``(B, H, W) float32`` landslide
        probability in [0, 1]."""
        return sigmoid(self.engine.predict_logits(inputs))[:, 0]

    def record(self) -> dict[str, Any]:
        """How the probabilities were made, for ``metrics.json`` and ``summary.json``:
        ``engine`` (the kind actually run), ``inference_precision`` (``fp32``, ``bf16``,
        ``int8``; not ``precision``, a metric of ``metrics.json``), ``tta`` (test-time
        augmentation) and ``checkpoint`` (the file, when known)."""
        return {"engine": self.kind, "inference_precision": str(getattr(self.engine, "precision", "fp32")),
                "tta": False, "checkpoint": None if self.source is None else str(self.source)}


def as_predictor(source: Engine | Predictor) -> Predictor:
    """A predictor as it is; an engine wrapped in one."""
    return source if isinstance(source, Predictor) else Predictor(source)


def load_predictor(
    checkpoint: str | Path, engine: str = "auto", inputs: Literal["patches", "scene"] = "patches",
    device: str = "cpu", precision: str = "fp32", calibration: str | Path | None = None,
) -> Predictor:
    """The predictor of a checkpoint (or exported ``.onnx``) for ``inputs``.

    Args:
        checkpoint: a slidemap ``.ckpt`` (or an ``.onnx`` export).
        engine: ``auto``, ``torch`` or ``onnx`` (:func:`engine_spec`).
        inputs: ``patches`` or ``scene``: what ``auto`` is chosen for.
        device: torch device of the torch engine (``auto``: CUDA when available).
        precision: ``fp32``, ``bf16`` or ``int8``.
        calibration: training patches for int8 from a checkpoint or float32 ``.onnx``.

    Raises:
        CheckpointError: unreadable, unsafe or not a slidemap checkpoint.
        ConfigError: an unknown engine or precision, a pair not registered, int8 without
            calibration data.
    """
    spec = engine_spec(checkpoint, engine, inputs, precision, calibration, device)
    return Predictor(load_engine(spec), spec.kind, checkpoint)
