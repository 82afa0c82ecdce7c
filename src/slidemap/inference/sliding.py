"""Sliding-window prediction over a scene of any size, with smooth overlap blending.

Geometry (one axis; the other is the same)::

    window = model input size (px)        overlap = px shared by neighbouring windows
    stride = window - overlap             margin  = overlap // 4 (context, weight ~ 0)
    windows start at -origin + k * stride, origin = margin rounded up to the model's
    size_multiple, so scene edges lie at least `margin` px inside the first/last window.

Every window is a full ``window × window`` model input; what lies outside the scene is the
normalised value 0 (the training mean) and so is every nodata pixel. Each window's
probabilities are weighted by a separable ramp :func:`blend_weights` that is ``EPS_WEIGHT``
on the ``margin`` px next to the window edge, rises as ``sin²`` over the next
``overlap - 2·margin`` px and is 1 inside; two neighbours' ramps sum to 1 (partition of
unity). The scene value is ``Σ w·p / Σ w``.

**Invariance rule.** A pixel's blended probability equals that of an infinitely large
window (to ``EPS_WEIGHT``) when (a) the network is translation-equivariant under shifts by
its ``size_multiple`` (windows are aligned to it) and has no global pooling or statistics
over the input (UNet and SegNet in eval mode: yes; CBAM's channel attention pools the whole
window and DP-FCN's pyramid pools globally: no, their outputs depend slightly on the window),
and (b) its receptive-field radius ``R`` satisfies ``margin = overlap // 4 >= R``. Then window
size changes nothing. Features are exact at window edges because each window is read with
the pipeline's halo (``InputPipeline.halo_px``).

Memory is bounded by the window and one strip of rows: the accumulator holds ``window``
rows of the scene width; rows are written to the output as soon as no later window touches
them.

**Uncertainty.** With test-time augmentation or an ensemble each window also gives the
standard deviation of its members' probabilities, blended with the same weights
(``Σ w·s / Σ w``). Where one window has all the weight (every pixel but the blending ramps
of width ``overlap − 2·margin``) that is exactly the members' standard deviation; in the
ramps it is the weighted mean of the overlapping windows' deviations (the exact deviation
of blended members would need one accumulator per member).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from slidemap.errors import ConfigError
from slidemap.inference.predictor import Predictor, PredictorSource, resolve_predictor
from slidemap.inference.scene import SceneReader

log = logging.getLogger(__name__)

#: Weight of a window's prediction in its outer ``margin`` (> 0 so every pixel has weight).
EPS_WEIGHT = 1e-6
DEFAULT_WINDOW_PX = 512  # the bare model runs fastest per pixel at 384-512 px (L3-sized activations; docs/speed.md)
DEFAULT_OVERLAP_PX = 64


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _fitted_window(length: int, window: int, overlap: int, edges: int, align: int) -> int:
    """Smallest side (multiple of ``align``, at most ``window``) for which the fewest
    ``window``-px windows of an axis still cover ``length + edges`` px: ``n`` windows of
    side ``w`` cover ``n·(w − overlap) + overlap`` px."""
    count = max(1, math.ceil((length + edges - window) / (window - overlap)) + 1)
    needed = math.ceil((length + edges - overlap) / count) + overlap
    return min(window, max(_round_up(needed, align), overlap + align))


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a ``height × width`` scene are.

    Attributes:
        height, width: scene size, px.
        window: window side, px (a multiple of ``align``).
        overlap: px shared by neighbours (a multiple of ``align``, < ``window``).
        align: the model's ``size_multiple``; window origins are multiples of it.
        margin: px at each window edge with weight ``EPS_WEIGHT`` (``overlap // 4``).
        origin: the first window starts at ``-origin`` (``margin`` rounded up to ``align``).
    """

    height: int
    width: int
    window: int
    overlap: int
    align: int
    margin: int
    origin: int

    @classmethod
    def create(
        cls, height: int, width: int, window: int = DEFAULT_WINDOW_PX,
        overlap: int = DEFAULT_OVERLAP_PX, align: int = 1,
    ) -> WindowPlan:
        """Plan windows; ``window`` and ``overlap`` are rounded up to multiples of ``align``.

        ``window`` is the largest side used: with the fewest windows of that size an axis
        needs, the side is then shrunk (in steps of ``align``) until those windows just cover
        the scene, so the last one does not hang far past the edge (with ``window=512`` a
        1024 px scene takes three 400 px windows, not three of 512). The longer need of the
        two axes wins.

        Raises:
            ConfigError: non-positive window, negative overlap or ``overlap >= window``.
        """
        if window < 1 or overlap < 0 or align < 1:
            raise ConfigError(f"window={window} must be >= 1 and overlap={overlap} >= 0")
        window_a, overlap_a = _round_up(window, align), _round_up(overlap, align)
        if (window_a, overlap_a) != (window, overlap):
            log.info("window/overlap rounded up to %d/%d px (multiples of %d)", window_a, overlap_a, align)
        if overlap_a >= window_a:
            raise ConfigError(
                f"overlap ({overlap_a} px) must be smaller than the window ({window_a} px)"
            )
        margin = overlap_a // 4
        origin = _round_up(margin, align)
        fitted = max(_fitted_window(length, window_a, overlap_a, margin + origin, align)
                     for length in (height, width))
        return cls(height, width, fitted, overlap_a, align, margin, origin)

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    def starts(self, length: int) -> list[int]:
        """Window start coordinates along an axis of ``length`` px (may be negative)."""
        # The last window must end >= margin past the scene: -origin + (n-1)*stride + window >= length + margin.
        n = max(1, math.ceil((length + self.margin + self.origin - self.window) / self.stride) + 1)
        return [-self.origin + k * self.stride for k in range(n)]

    @property
    def row_starts(self) -> list[int]:
        return self.starts(self.height)

    @property
    def col_starts(self) -> list[int]:
        return self.starts(self.width)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def windows(self) -> Iterator[Window]:
        """All windows, row by row (the order the blender expects)."""
        for row in self.row_starts:
            for col in self.col_starts:
                yield Window(col, row, self.window, self.window)


def blend_weights_1d(plan: WindowPlan) -> np.ndarray:
    """``(window,) float32`` weights along one axis (see the module docstring)."""
    centre = np.arange(plan.window, dtype=np.float64) + 0.5
    distance = np.minimum(centre, plan.window - centre)  # to the nearer window edge
    ramp_width = max(plan.overlap - 2 * plan.margin, 1)
    t = np.clip((distance - plan.margin) / ramp_width, 0.0, 1.0)
    return (EPS_WEIGHT + (1.0 - EPS_WEIGHT) * np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)


def blend_weights(plan: WindowPlan) -> np.ndarray:
    """``(window, window) float32`` separable weights, > 0 everywhere."""
    w = blend_weights_1d(plan)
    return np.outer(w, w)


@dataclass
class WindowResult:
    """A window's prediction: ``probability`` and ``valid`` are ``(window, window)``; pixels
    outside the scene or on nodata are invalid (their probability is not used).
    ``uncertainty`` (same shape) is the members' standard deviation, or ``None`` with a
    single member."""

    window: Window
    probability: np.ndarray
    valid: np.ndarray
    uncertainty: np.ndarray | None = None


def clip_to_scene(window: Window, height: int, width: int) -> Window:
    """The part of ``window`` inside a ``height × width`` scene."""
    row0, col0 = max(0, int(window.row_off)), max(0, int(window.col_off))
    row1 = min(height, int(window.row_off + window.height))
    col1 = min(width, int(window.col_off + window.width))
    return Window(col0, row0, max(0, col1 - col0), max(0, row1 - row0))


def predict_window(
    source: PredictorSource, reader: SceneReader, window: Window
) -> WindowResult:
    """Predict one full-size window (it may extend beyond the scene) with ``source`` (an
    engine is run through a :class:`~slidemap.inference.predictor.Predictor`).

    The part inside the scene is read with the pipeline's halo, turned into model input,
    normalised, cropped and placed in a zero (= training mean) canvas; nodata pixels are
    zero too, so a window's input never depends on where it was cut.
    """
    predictor = resolve_predictor(source)
    size_h, size_w = int(window.height), int(window.width)
    inner = clip_to_scene(window, reader.height, reader.width)
    canvas = np.zeros((predictor.input_channels, size_h, size_w), dtype=np.float32)
    valid = np.zeros((size_h, size_w), dtype=bool)
    if inner.height > 0 and inner.width > 0:
        bands, inner_valid, (top, left) = reader.read_with_halo(inner, predictor.pipeline.halo_px)
        model_input = predictor.prepare(bands)
        model_input[:, ~inner_valid] = 0.0
        rows = slice(top, top + int(inner.height))
        cols = slice(left, left + int(inner.width))
        dst_r = int(inner.row_off - window.row_off)
        dst_c = int(inner.col_off - window.col_off)
        dst = (slice(dst_r, dst_r + int(inner.height)), slice(dst_c, dst_c + int(inner.width)))
        canvas[(slice(None), *dst)] = model_input[:, rows, cols]
        valid[dst] = inner_valid[rows, cols]
    prediction = predictor.predict(canvas[None])
    uncertainty = None if prediction.uncertainty is None else prediction.uncertainty[0]
    return WindowResult(window, prediction.probability[0], valid, uncertainty)


@dataclass
class BlendedRows:
    """Finished scene rows: ``probability`` (and ``uncertainty``, when the windows had one)
    ``(n, width) float32`` with NaN on nodata, from scene row ``first``."""

    first: int
    probability: np.ndarray
    uncertainty: np.ndarray | None = None


class StripBlender:
    """Accumulates ``Σ w·p`` and ``Σ w`` (and ``Σ w·s`` of the uncertainty, when asked)
    over a strip of ``window`` rows of the scene and hands back finished rows; memory
    ``O(window × width)``.

    Feed results in :meth:`WindowPlan.windows` order (row by row) via :meth:`add`; call
    :meth:`finish_rows_before` after each grid row and :meth:`finish` at the end.
    """

    def __init__(self, plan: WindowPlan, uncertainty: bool = False) -> None:
        self.plan = plan
        self.weights = blend_weights(plan)
        self.base = 0  # scene row of buffer row 0
        shape = (plan.window + plan.stride, plan.width)
        self.sum_wp = np.zeros(shape, dtype=np.float32)
        self.sum_w = np.zeros(shape, dtype=np.float32)
        self.sum_ws = np.zeros(shape, dtype=np.float32) if uncertainty else None
        self.valid = np.zeros(shape, dtype=bool)

    def add(self, result: WindowResult) -> None:
        """Add one window's weighted prediction (the part inside the scene)."""
        plan = self.plan
        inner = clip_to_scene(result.window, plan.height, plan.width)
        if inner.height == 0 or inner.width == 0:
            return
        src_r, src_c = int(inner.row_off - result.window.row_off), int(inner.col_off - result.window.col_off)
        src = (slice(src_r, src_r + int(inner.height)), slice(src_c, src_c + int(inner.width)))
        dst_r = int(inner.row_off) - self.base
        if dst_r < 0 or dst_r + int(inner.height) > self.sum_w.shape[0]:
            raise RuntimeError(f"window {result.window} fed out of order (strip starts at row {self.base})")
        dst = (slice(dst_r, dst_r + int(inner.height)), slice(int(inner.col_off), int(inner.col_off + inner.width)))
        weight = self.weights[src]
        self.sum_wp[dst] += weight * result.probability[src]
        self.sum_w[dst] += weight
        self.valid[dst] |= result.valid[src]
        if self.sum_ws is not None:
            if result.uncertainty is None:
                raise ValueError("the blender expects an uncertainty with every window")
            self.sum_ws[dst] += weight * result.uncertainty[src]

    def finish_rows_before(self, row: int) -> BlendedRows | None:
        """Blend and release scene rows ``[base, row)`` (``None`` when there are none)."""
        row = min(row, self.plan.height)
        n = row - self.base
        if n <= 0:
            return None
        buffers = [self.sum_wp, self.sum_w, self.valid]
        with np.errstate(invalid="ignore", divide="ignore"):
            probability = self.sum_wp[:n] / self.sum_w[:n]
            uncertainty = None if self.sum_ws is None else self.sum_ws[:n] / self.sum_w[:n]
        for layer in (probability, uncertainty):
            if layer is not None:
                layer[~self.valid[:n]] = np.nan
        if self.sum_ws is not None:
            buffers.append(self.sum_ws)
        finished = BlendedRows(self.base, probability, uncertainty)
        for buffer in buffers:
            buffer[:-n] = buffer[n:].copy()
            buffer[-n:] = 0
        self.base = row
        return finished

    def finish(self) -> BlendedRows | None:
        """Release every remaining row."""
        return self.finish_rows_before(self.plan.height)


def blend_windows(
    plan: WindowPlan, results: Iterable[WindowResult],
    write: Callable[[BlendedRows], None], uncertainty: bool = False,
) -> None:
    """Blend ``results`` (in plan order) and ``write`` the rows as they finish (with the
    blended uncertainty when ``uncertainty``)."""
    blender = StripBlender(plan, uncertainty)
    per_row = len(plan.col_starts)
    next_rows = [*plan.row_starts[1:], plan.height]
    for i, result in enumerate(results):
        blender.add(result)
        if (i + 1) % per_row == 0:
            finished = blender.finish_rows_before(next_rows[i // per_row])
            if finished is not None:
                write(finished)
    finished = blender.finish()
    if finished is not None:
        write(finished)


def iter_windows_local(
    source: PredictorSource, reader: SceneReader, plan: WindowPlan
) -> Iterator[WindowResult]:
    """Predict every window of ``plan`` in this process, in order."""
    predictor: Predictor = resolve_predictor(source)
    for window in plan.windows():
        yield predict_window(predictor, reader, window)
