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

Which runtime runs the network is one choice (:data:`ENGINE_CHOICES`), made by
:func:`resolve_engine_kind` and recorded as the kind actually used.
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
    TorchEngine,
    load_engine,
    prepare_input,
    sigmoid,
)
from slidemap.inference.onnx_export import OnnxEngine

EngineChoice = Literal["auto", "torch", "onnx"]
#: ``--engine`` values: ``auto`` resolves by input kind (:func:`resolve_engine_kind`).
ENGINE_CHOICES: tuple[str, ...] = ("auto", *ENGINE_KINDS)
#: What ``auto`` runs. Measured on the development CPU (docs/speed.md): on batches of
#: 128 px patches the optimised torch engine is 1.03-2.1x faster than ONNX Runtime; on
#: 512 px scene windows ONNX Runtime is 1.3-1.8x faster than torch.
AUTO_ENGINE: dict[str, EngineKind] = {"patches": "torch", "scene": "onnx"}


def resolve_engine_kind(choice: str, inputs: Literal["patches", "scene"]) -> EngineKind:
    """The engine kind of ``choice`` (``auto``, ``torch`` or ``onnx``) for ``inputs``.

    Raises:
        ConfigError: an unknown choice.
    """
    if choice == "auto":
        return AUTO_ENGINE[inputs]
    if choice not in ENGINE_KINDS:
        raise ConfigError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, got {choice!r}")
    return choice  # type: ignore[return-value]


def resolve_device(device: str = "auto") -> str:
    """``auto`` = ``cuda`` when available, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def engine_kind(engine: Engine) -> str:
    """``torch``, ``onnx``, or the class name of another engine."""
    kinds = {TorchEngine: "torch", OnnxEngine: "onnx"}
    return kinds.get(type(engine), type(engine).__name__)  # type: ignore[arg-type]


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
        ``engine`` (the kind actually run), ``tta`` (test-time augmentation) and
        ``checkpoint`` (the file, when known)."""
        return {"engine": self.kind, "tta": False,
                "checkpoint": None if self.source is None else str(self.source)}


def as_predictor(source: Engine | Predictor) -> Predictor:
    """A predictor as it is; an engine wrapped in one."""
    return source if isinstance(source, Predictor) else Predictor(source)


def load_predictor(
    checkpoint: str | Path, engine: str = "auto", inputs: Literal["patches", "scene"] = "patches",
    device: str = "cpu",
) -> Predictor:
    """The predictor of a checkpoint (or exported ``.onnx``) for ``inputs``.

    Args:
        checkpoint: a slidemap ``.ckpt`` (an ``.onnx`` export with ``engine="onnx"``).
        engine: ``auto``, ``torch`` or ``onnx`` (:func:`resolve_engine_kind`).
        inputs: ``patches`` or ``scene``: what ``auto`` is chosen for.
        device: torch device of the torch engine (``auto``: CUDA when available).

    Raises:
        CheckpointError: unreadable, unsafe or not a slidemap checkpoint.
        ConfigError: an unknown engine.
    """
    kind = resolve_engine_kind(engine, inputs)
    spec = EngineSpec(Path(checkpoint), kind, resolve_device(device) if kind == "torch" else "cpu")
    return Predictor(load_engine(spec), kind, checkpoint)
