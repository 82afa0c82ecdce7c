"""The one path from a band stack to landslide probabilities.

Every command that turns imagery into probabilities — ``predict`` (scenes and patches),
``evaluate``, ``compare`` and the demo — does it through a :class:`Predictor`:
:meth:`Predictor.prepare` (input pipeline, then normalisation) and
:meth:`Predictor.predict` (the engines' logits through a sigmoid, averaged). Nothing else in
slidemap calls an engine's ``predict_logits`` or a network's ``forward`` to make
probabilities, so ``evaluate`` scores exactly what ``predict`` ships (a test checks it).

**Members.** A predictor averages, in probability space, the predictions of its members:
each checkpoint of an ensemble (``--checkpoint A.ckpt B.ckpt C.ckpt``) under each transform
of its transform set — the identity, or with test-time augmentation (``--tta``) the 8 flips
and 90° rotations of :mod:`slidemap.data.augment`, each prediction mapped back onto the
input's pixels. With ``M = checkpoints × transforms > 1`` members, :meth:`Predictor.predict`
also returns the per-pixel standard deviation of the ``M`` member probabilities (population
standard deviation, ddof = 0: the members are the whole set that is averaged, not a sample
of it): the uncertainty map.

Checkpoints of an ensemble must read the same band set through the same input pipeline
(features, pixel size, elevation mode, band subset), checked by :func:`check_members`; the
networks may differ. Each member normalises with its own statistics: :meth:`Predictor.prepare`
returns one block of normalised channels per distinct set of statistics (one block when all
members were trained on the same data), so zero stays "the training mean" for every member
and a window's padding and nodata mean the same to each member as when it runs alone.

**Memory.** Members run one after another, each on the whole batch it is given (one window,
or one batch of patches), so a predictor never holds more than one network's activations of
that batch: the bound of a single model. On top it keeps two float64 sums per pixel of the
batch (16 bytes per pixel) and the transformed copy of the input. Test-time augmentation
therefore costs 8× the network time, an ensemble of ``n`` checkpoints ``n``×, and nothing in
memory.

**Threshold of an ensemble:** the mean of its members' thresholds (each the threshold its
own training chose for its own probabilities; the mean is the same value when all agree, as
for seeds of one config) unless a threshold is given; :meth:`Predictor.threshold_rule` says
which, and it is recorded next to the threshold in ``metrics.json`` and ``summary.json``.

Which runtime runs the networks, and at which numeric precision, is one choice
(:data:`ENGINE_CHOICES`, :data:`~slidemap.inference.engine.PRECISIONS`), made by
:func:`resolve_engine_kind` (``auto`` on scenes times the candidates on one window) and
recorded as the kind and precision actually used. A
:class:`PredictorSpec` (checkpoint paths, engine kind, transform set) rebuilds the same
predictor in another process (a Dask worker): :func:`resolve_predictor`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slidemap.data.augment import N_DIHEDRAL, apply_dihedral, invert_dihedral
from slidemap.data.normalization import ChannelStats
from slidemap.errors import CheckpointError, ConfigError
from slidemap.features import InputPipeline
from slidemap.inference.engine import (
    ENGINE_KINDS,
    Engine,
    EngineKind,
    EngineSpec,
    candidate_kinds,
    choose_engine,
    engine_entry,
    load_engine,
    prepare_input,
    sigmoid,
)

EngineChoice = Literal["auto", "torch", "onnx"]
#: ``--engine`` values: ``auto`` resolves by input kind (:func:`resolve_engine_kind`).
ENGINE_CHOICES: tuple[str, ...] = ("auto", *ENGINE_KINDS)
#: What ``auto`` runs on batches of 128 px patches when several engines run the precision:
#: the optimised torch engine, measured 1.0-1.4x ONNX Runtime's speed there for every model
#: (docs/speed.md). On scene windows the faster engine depends on the model and the machine
#: (the fused CBAM kernel, oneDNN's and ONNX Runtime's thread scaling), so ``auto`` times
#: the candidates on one window (:func:`~slidemap.inference.engine.choose_engine`).
AUTO_PATCH_ENGINE: EngineKind = "torch"


def resolve_engine_kind(choice: str, inputs: Literal["patches", "scene"],
                        model: str | Path | None = None, precision: str = "fp32") -> EngineKind | None:
    """The engine kind of ``choice`` (``auto``, ``torch`` or ``onnx``) for ``inputs`` at
    ``precision``; ``None`` when ``auto`` must time the candidates (scenes, several engines).
    With ``auto``, an exported ONNX ``model`` (told by its content, not its name) runs on
    ONNX Runtime whatever the inputs.

    Raises:
        ConfigError: an unknown choice or precision, or a kind that does not run it.
        CheckpointError: ``model`` is missing, empty or plainly no model (a patch, a GeoTIFF).
    """
    if choice == "auto":
        kinds = candidate_kinds(precision, model)  # an export runs on onnxruntime only
        if len(kinds) == 1:
            return kinds[0]  # type: ignore[return-value]
        return AUTO_PATCH_ENGINE if inputs == "patches" else None
    if choice not in ENGINE_KINDS:
        raise ConfigError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, got {choice!r}")
    engine_entry(choice, precision)  # a kind that does not run the precision: one clear error
    return choice  # type: ignore[return-value]


def resolve_device(device: str = "auto") -> str:
    """``auto`` = ``cuda`` when available, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def engine_kind(engine: Engine) -> str:
    """``torch``, ``onnx``, or the class name of another engine."""
    return str(getattr(engine, "kind", type(engine).__name__))


#: Transform sets (indices of :func:`~slidemap.data.augment.apply_dihedral`): the identity,
#: and with test-time augmentation the 8 flips and 90° rotations.
IDENTITY: tuple[int, ...] = (0,)
TTA_TRANSFORMS: tuple[int, ...] = tuple(range(N_DIHEDRAL))


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where two plain-data values (dicts, lists, scalars) first differ, as
    ``"features: ['exg'] vs ['exg', 'slope']"``; ``None`` when equal."""
    label = where or "value"
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            inner = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                return f"{inner}: {a.get(key, 'absent')!r} vs {b.get(key, 'absent')!r}"
            found = first_difference(a[key], b[key], inner)
            if found:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b) and any(
            isinstance(x, dict) for x in a):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{label}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        a, b = list(a), list(b)
    return None if a == b else f"{label}: {a!r} vs {b!r}"


def check_members(engines: Sequence[Engine], sources: Sequence[Path | None]) -> None:
    """Refuse an ensemble whose members do not read the same bands through the same input
    pipeline (band set, features, pixel size, elevation mode, band subset).

    Raises:
        CheckpointError: naming the member that differs, the first member and the first
            difference of their pipelines.
    """
    first = engines[0].pipeline.to_dict()
    for engine, source in zip(engines[1:], sources[1:], strict=True):
        difference = first_difference(first, engine.pipeline.to_dict())
        if difference is not None:
            raise CheckpointError(
                f"cannot be averaged with {sources[0] or 'the first checkpoint'}: their input "
                f"pipelines differ in {difference}; an ensemble needs checkpoints of the same "
                "band set, features, pixel size and elevation mode", source)


@dataclass
class Prediction:
    """What a predictor says about a batch.

    Attributes:
        probability: ``(B, H, W) float32`` landslide probability in [0, 1], the mean over
            the members.
        uncertainty: ``(B, H, W) float32`` population standard deviation of the members'
            probabilities (in [0, 0.5]); ``None`` with a single member.
    """

    probability: np.ndarray
    uncertainty: np.ndarray | None = None


class Predictor:
    """Landslide probabilities from one or several engines, with or without test-time
    augmentation (the module docstring explains members, memory and threshold).

    Args:
        engine: an engine, or the engines of an ensemble (same input pipeline, checked).
        kind: how the engines run (``torch``, ``onnx``), for records; ``None`` infers it.
        source: the checkpoint (or ONNX file) each engine was loaded from, for records and
            error messages (one path for one engine, a sequence for several).
        tta: average over the 8 flips and 90° rotations of the input.

    Raises:
        CheckpointError: engines whose input pipelines differ.
    """

    def __init__(
        self, engine: Engine | Sequence[Engine], kind: str | None = None,
        source: str | Path | Sequence[str | Path | None] | None = None, *, tta: bool = False,
    ) -> None:
        self.engines: tuple[Engine, ...] = tuple(engine) if isinstance(engine, list | tuple) else (engine,)
        if not self.engines:
            raise ConfigError("a predictor needs at least one engine")
        sources = (source,) if source is None or isinstance(source, str | Path) else tuple(source)
        if source is None:
            sources = (None,) * len(self.engines)
        if len(sources) != len(self.engines):
            raise ValueError(f"{len(sources)} sources for {len(self.engines)} engines")
        self.sources: tuple[Path | None, ...] = tuple(None if s is None else Path(s) for s in sources)
        check_members(self.engines, self.sources)
        self.kind = kind or engine_kind(self.engines[0])
        self.tta = bool(tta)
        self.transforms = TTA_TRANSFORMS if tta else IDENTITY
        self._blocks: list[ChannelStats] = []  # distinct statistics, in member order
        self._block_of: list[int] = []
        for member in self.engines:
            if member.stats not in self._blocks:
                self._blocks.append(member.stats)
            self._block_of.append(self._blocks.index(member.stats))

    @property
    def engine(self) -> Engine:
        """The first (for a single checkpoint: the only) engine."""
        return self.engines[0]

    @property
    def source(self) -> Path | None:
        """The first member's file."""
        return self.sources[0]

    @property
    def pipeline(self) -> InputPipeline:
        return self.engine.pipeline

    @property
    def stats(self) -> ChannelStats:
        """The first member's normalisation statistics (the radiometry check's reference)."""
        return self.engine.stats

    @property
    def threshold(self) -> float:
        """The checkpoint's threshold; for an ensemble the mean of the members' thresholds."""
        return math.fsum(float(e.threshold) for e in self.engines) / len(self.engines)

    def threshold_rule(self, given: float | None = None) -> str:
        """Where the threshold in use comes from, for ``metrics.json`` and ``summary.json``."""
        if given is not None:
            return "given"
        if len(self.engines) == 1:
            return "checkpoint"
        values = ", ".join(f"{float(e.threshold):g}" for e in self.engines)
        return f"mean of the members' thresholds ({values})"

    @property
    def model_name(self) -> str:
        """The registry name of the network(s): ``unet_cbam``, or ``unet+unet_cbam`` when
        an ensemble mixes networks."""
        return "+".join(dict.fromkeys(e.model_name for e in self.engines))

    @property
    def label(self) -> str:
        """A display name: the model name with the ensemble size and TTA, e.g.
        ``unet_cbam (3 checkpoints, TTA)``."""
        parts = ([f"{len(self.engines)} checkpoints"] if len(self.engines) > 1 else []) + (
            ["TTA"] if self.tta else [])
        return f"{self.model_name} ({', '.join(parts)})" if parts else self.model_name

    @property
    def size_multiple(self) -> int:
        """Input sides that suit every member (the least common multiple of theirs)."""
        return math.lcm(*(int(e.size_multiple) for e in self.engines))

    @property
    def input_channels(self) -> int:
        """Channels of :meth:`prepare`'s output: the pipeline's, once per distinct statistics."""
        return self.pipeline.in_channels * len(self._blocks)

    @property
    def n_members(self) -> int:
        """Predictions averaged per pixel: checkpoints × transforms."""
        return len(self.engines) * len(self.transforms)

    @property
    def has_uncertainty(self) -> bool:
        """Whether :meth:`predict` gives an uncertainty (more than one member)."""
        return self.n_members > 1

    def prepare(self, bands: np.ndarray) -> np.ndarray:
        """``(C_bands, H, W)`` stored units -> ``(input_channels, H, W) float32`` model input:
        the pipeline's channels normalised by each distinct set of members' statistics, blocks
        stacked along the channels (one block, the usual case, is the normalised input)."""
        if len(self._blocks) == 1:
            return prepare_input(self.engine, bands)
        channels = self.pipeline(bands)
        return np.concatenate([stats.apply(channels) for stats in self._blocks])

    def _member(self, engine: Engine, inputs: np.ndarray, transform: int) -> np.ndarray:
        """One member: ``engine`` on ``inputs`` seen through ``transform``, mapped back;
        ``(B, H, W) float32``."""
        if transform == 0:
            return sigmoid(engine.predict_logits(inputs))[:, 0]
        seen = apply_dihedral(inputs, None, transform)[0]
        return invert_dihedral(sigmoid(engine.predict_logits(seen))[:, 0], transform)

    def predict(self, inputs: np.ndarray) -> Prediction:
        """``(B, input_channels, H, W) float32`` (from :meth:`prepare`) -> the members' mean
        probability and, with several members, their standard deviation (:class:`Prediction`).

        The deviation is accumulated from differences to the first member (float64), so it
        is exact to float32 rounding even where it is tiny against the probability.
        """
        channels = self.pipeline.in_channels
        if inputs.ndim != 4 or inputs.shape[1] != self.input_channels:
            raise ValueError(f"inputs must be (B, {self.input_channels}, H, W), got {inputs.shape}")
        members = [(engine, inputs[:, block * channels:(block + 1) * channels], transform)
                   for engine, block in zip(self.engines, self._block_of, strict=True)
                   for transform in self.transforms]
        first = self._member(*members[0])
        if len(members) == 1:
            return Prediction(first)
        reference = first.astype(np.float64)
        total = np.zeros_like(reference)
        squares = np.zeros_like(reference)
        for member in members[1:]:
            difference = self._member(*member).astype(np.float64) - reference
            total += difference
            squares += difference * difference
        mean_difference = total / len(members)
        variance = np.maximum(squares / len(members) - mean_difference**2, 0.0)
        probability = np.clip(reference + mean_difference, 0.0, 1.0)
        return Prediction(probability.astype(np.float32), np.sqrt(variance).astype(np.float32))

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """``(B, input_channels, H, W) float32`` normalised input -> ``(B, H, W) float32``
        landslide probability in [0, 1] (the members' mean)."""
        return self.predict(inputs).probability

    def record(self) -> dict[str, Any]:
        """How the probabilities were made, for ``metrics.json`` and ``summary.json``:
        ``engine`` (the kind actually run), ``inference_precision`` (``fp32``, ``bf16``,
        ``int8``; not ``precision``, a metric of ``metrics.json``), ``tta`` (test-time
        augmentation), ``checkpoint`` (the file when known; a list for an ensemble) and
        ``ensemble_size`` (checkpoints averaged)."""
        paths = [None if s is None else str(s) for s in self.sources]
        return {"engine": self.kind, "inference_precision": str(getattr(self.engine, "precision", "fp32")),
                "tta": self.tta,
                "checkpoint": paths[0] if len(paths) == 1 else paths,
                "ensemble_size": len(self.engines)}


@dataclass(frozen=True)
class PredictorSpec:
    """How to build a predictor anywhere (a Dask worker too): its members' engine specs
    and whether it runs test-time augmentation. Plain, picklable data."""

    members: tuple[EngineSpec, ...]
    tta: bool = False

    @property
    def kind(self) -> str:
        return self.members[0].kind


def predictor_spec(
    checkpoints: str | Path | Sequence[str | Path], engine: str = "auto",
    inputs: Literal["patches", "scene"] = "patches", device: str = "cpu", *, tta: bool = False,
    precision: str = "fp32", calibration: str | Path | None = None, window: int = 512,
) -> PredictorSpec:
    """The :class:`PredictorSpec` of one or several checkpoints (or ``.onnx`` exports):
    ``engine`` and ``precision`` resolved (:func:`resolve_engine_kind`; ``auto`` on scenes
    times the candidates on one ``window``² input of the first checkpoint), ``calibration``
    (training patches) kept for int8.

    Raises:
        ConfigError: an unknown engine or precision, a pair not registered, or no checkpoint.
        CheckpointError: a checkpoint given twice (it would count double in the average).
    """
    paths = [Path(checkpoints)] if isinstance(checkpoints, str | Path) else [Path(c) for c in checkpoints]
    if not paths:
        raise ConfigError("give at least one checkpoint")
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise CheckpointError(f"is given twice (also as {seen[key]}); each checkpoint of an "
                                  "ensemble counts once", path)
        seen[key] = path
    # an exported .onnx member runs on ONNX Runtime only: with ``auto`` the ensemble follows it
    kinds = {resolve_engine_kind(engine, inputs, path, precision) for path in paths}
    calibration = None if calibration is None else Path(calibration)
    kind: EngineKind
    if "onnx" in kinds:
        kind = "onnx"
    elif None in kinds:  # auto on scenes: the faster engine on one window, timed here
        timed, _ = choose_engine(EngineSpec(paths[0], precision=precision,  # type: ignore[arg-type]
                                            calibration=calibration), batch=1, side=window)
        kind = timed.kind
    else:
        kind = kinds.pop()  # type: ignore[assignment]
    device = resolve_device(device) if kind == "torch" else "cpu"
    return PredictorSpec(tuple(EngineSpec(path, kind, device, precision, calibration)  # type: ignore[arg-type]
                               for path in paths), tta)


def build_predictor(spec: PredictorSpec) -> Predictor:
    """The predictor of ``spec``, built once per process (cached by the members' files and
    modification times, so a rewritten checkpoint is loaded again).

    Raises:
        CheckpointError: a member unreadable, unsafe or not a slidemap checkpoint, or
            members whose input pipelines differ.
    """
    mtimes = tuple(m.path.stat().st_mtime_ns if m.path.exists() else 0 for m in spec.members)
    return _build_predictor_cached(spec, mtimes)


@functools.lru_cache(maxsize=2)
def _build_predictor_cached(spec: PredictorSpec, mtimes: tuple[int, ...]) -> Predictor:
    del mtimes  # part of the cache key only
    engines = [load_engine(member) for member in spec.members]
    return Predictor(engines, spec.kind, [m.path for m in spec.members], tta=spec.tta)


#: Anything a prediction can be asked of: an engine or a predictor, or their picklable specs.
PredictorSource = Engine | EngineSpec | Predictor | PredictorSpec


def for_workers(source: PredictorSource, predictor: Predictor) -> Predictor | PredictorSpec:
    """What to send to other processes: the spec when ``source`` is one (workers rebuild the
    predictor from files), else the in-memory ``predictor`` (built from ``source``)."""
    if isinstance(source, PredictorSpec):
        return source
    return PredictorSpec((source,)) if isinstance(source, EngineSpec) else predictor


def resolve_predictor(source: PredictorSource) -> Predictor:
    """A predictor as it is; a spec built (:func:`build_predictor`); an engine wrapped."""
    if isinstance(source, Predictor):
        return source
    if isinstance(source, PredictorSpec):
        return build_predictor(source)
    if isinstance(source, EngineSpec):
        return build_predictor(PredictorSpec((source,)))
    return Predictor(source)


def load_predictor(
    checkpoint: str | Path | Sequence[str | Path], engine: str = "auto",
    inputs: Literal["patches", "scene"] = "patches", device: str = "cpu", *, tta: bool = False,
    precision: str = "fp32", calibration: str | Path | None = None,
) -> Predictor:
    """The predictor of one checkpoint (or exported ``.onnx``), or of an ensemble of several,
    for ``inputs``.

    Args:
        checkpoint: a slidemap ``.ckpt`` (an ``.onnx`` export with ``engine="onnx"``), or
            several of the same input pipeline (an ensemble).
        engine: ``auto``, ``torch`` or ``onnx`` (:func:`resolve_engine_kind`).
        inputs: ``patches`` or ``scene``: what ``auto`` is chosen for.
        device: torch device of the torch engine (``auto``: CUDA when available).
        tta: test-time augmentation (the 8 flips and 90° rotations).
        precision: ``fp32``, ``bf16`` or ``int8``.
        calibration: training patches for int8 from a checkpoint or float32 ``.onnx``.

    Raises:
        CheckpointError: unreadable, unsafe or not a slidemap checkpoint; checkpoints of
            different input pipelines, or one given twice.
        ConfigError: an unknown engine or precision, a pair not registered, int8 without
            calibration data.
    """
    return build_predictor(predictor_spec(checkpoint, engine, inputs, device, tta=tta,
                                          precision=precision, calibration=calibration))
