"""Block bootstrap of F1 over patches: intervals for one model and for differences of two.

Neighbouring patches overlap (the rgbd areas: 128 px patches at a 64 px stride) and their
errors are correlated, so resampling single patches would make intervals too narrow. The
patches are grouped into blocks of the scene grid (:func:`patch_blocks`, from the
``<row>_<col>`` ids) and whole blocks are resampled with replacement, within each stratum
(an area) separately. For each resample the F1 of every model and seed is computed from
the summed confusion counts, averaged over seeds, then over strata (each area weighs the
same, as in a leave-one-area-out mean). Percentile intervals (Efron) of that statistic, and
of the difference between two models computed on the *same* resampled blocks (paired),
are returned.

Landslide4Sense's numbered ids (``image_17.h5``) carry no position: each such patch is its
own block, which is right when those patches do not overlap (and makes the interval too
narrow if they do).

Pure numpy; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from slidemap.data.l4s import grid_position

#: block side in scene pixels: 8 × 8 patch origins at the rgbd stride of 64 px
DEFAULT_BLOCK_PX = 512
DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95


def patch_blocks(patch_ids: Sequence[str], block_px: int = DEFAULT_BLOCK_PX,
                 strata: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Block of every patch and stratum of every block.

    Args:
        patch_ids: ids ``[<area>/]<row>_<col>`` (pixel offsets), or ids without a position
            (each is then its own block).
        block_px: block side in scene pixels.
        strata: stratum name of each patch (e.g. its held-out area); ``None`` = one stratum.

    Returns:
        ``blocks`` ``(P,)`` int, block index of each patch (0..B-1, in order of first
        appearance), and ``block_strata`` ``(B,)`` int, stratum index of each block.
    """
    names = ["" for _ in patch_ids] if strata is None else list(strata)
    if len(names) != len(patch_ids):
        raise ValueError(f"{len(names)} strata for {len(patch_ids)} patches")
    keys: dict[tuple[str, str, int, int] | tuple[str, str], int] = {}
    stratum_index: dict[str, int] = {}
    blocks = np.empty(len(patch_ids), dtype=np.int64)
    block_strata: list[int] = []
    for i, (patch_id, stratum) in enumerate(zip(patch_ids, names, strict=True)):
        position = grid_position(patch_id)
        key: tuple[str, str, int, int] | tuple[str, str] = (
            (stratum, patch_id) if position is None
            else (stratum, position[0], position[1] // block_px, position[2] // block_px))
        if key not in keys:
            keys[key] = len(keys)
            block_strata.append(stratum_index.setdefault(stratum, len(stratum_index)))
        blocks[i] = keys[key]
    return blocks, np.asarray(block_strata, dtype=np.int64)


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    """F1 = 2 tp / (2 tp + fp + fn) over the last axis ``(tp, fp, fn, ...)``; 1 where
    there is nothing to find and nothing was found (0/0)."""
    tp, fp, fn = (counts[..., k].astype(np.float64) for k in range(3))
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 1.0)


def resample_weights(block_strata: np.ndarray, n_resamples: int,
                     rng: np.random.Generator) -> np.ndarray:
    """``(R, B)`` int: how often each block is drawn in each resample; every stratum's
    blocks are drawn with replacement, as many as it has (``rng.integers`` once per
    stratum, strata in index order)."""
    n_blocks = len(block_strata)
    weights = np.zeros((n_resamples, n_blocks), dtype=np.int64)
    rows = np.arange(n_resamples)[:, None]
    for stratum in range(int(block_strata.max()) + 1 if n_blocks else 0):
        members = np.flatnonzero(block_strata == stratum)
        drawn = members[rng.integers(0, len(members), size=(n_resamples, len(members)))]
        np.add.at(weights, (np.broadcast_to(rows, drawn.shape), drawn), 1)
    return weights


def stratified_f1(block_counts: np.ndarray, block_strata: np.ndarray,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """Seed-mean, stratum-mean F1 of every model.

    Args:
        block_counts: ``(M, S, B, 3)`` tp, fp, fn per model, seed and block.
        block_strata: ``(B,)`` stratum of each block.
        weights: ``(R, B)`` resample weights; ``None`` = the data as it is.

    Returns:
        ``(M,)`` (no weights) or ``(R, M)``.
    """
    n_strata = int(block_strata.max()) + 1
    one_hot = (block_strata[None, :] == np.arange(n_strata)[:, None]).astype(np.int64)  # (K, B)
    if weights is None:
        per_stratum = np.einsum("kb,msbc->mskc", one_hot, block_counts)
        return f1_from_counts(per_stratum).mean(axis=(1, 2))
    per_stratum = np.einsum("rkb,msbc->rmskc", weights[:, None, :] * one_hot[None], block_counts,
                            optimize=True)
    return f1_from_counts(per_stratum).mean(axis=(2, 3))


@dataclass(frozen=True)
class Interval:
    """An estimate and its percentile confidence interval."""

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class BootstrapResult:
    """F1 intervals of every model, and of every pair's difference (``first − second``)."""

    models: tuple[str, ...]
    f1: dict[str, Interval]
    differences: dict[tuple[str, str], Interval]
    n_resamples: int
    n_blocks: int
    confidence: float

    def to_dict(self) -> dict[str, object]:
        return {
            "n_resamples": self.n_resamples, "n_blocks": self.n_blocks,
            "confidence": self.confidence,
            "f1": {name: interval.to_dict() for name, interval in self.f1.items()},
            "differences": [{"first": a, "second": b, **interval.to_dict()}
                            for (a, b), interval in self.differences.items()],
        }


def block_bootstrap(
    models: Sequence[str], counts: np.ndarray, blocks: np.ndarray, block_strata: np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0,
) -> BootstrapResult:
    """Percentile block-bootstrap intervals of F1 and of paired F1 differences.

    Args:
        models: model names, one per first axis of ``counts``.
        counts: ``(M, S, P, >=3)`` per model, seed and patch: tp, fp, fn (more columns, such
            as tn, are ignored). Every model is scored on the same patches.
        blocks: ``(P,)`` block of each patch; block_strata: ``(B,)`` stratum of each block
            (:func:`patch_blocks`).
        n_resamples: bootstrap resamples.
        confidence: interval coverage (0.95: the 2.5th and 97.5th percentiles).
        seed: seed of the resampling (same seed, same intervals).
    """
    counts = np.asarray(counts)[..., :3].astype(np.int64)
    if counts.ndim != 4 or counts.shape[0] != len(models):
        raise ValueError(f"counts must be (models, seeds, patches, 3) for {len(models)} models, "
                         f"got {counts.shape}")
    n_blocks = len(block_strata)
    block_counts = np.zeros((*counts.shape[:2], n_blocks, 3), dtype=np.int64)
    np.add.at(block_counts, (slice(None), slice(None), blocks), counts)
    weights = resample_weights(block_strata, n_resamples, np.random.default_rng(seed))
    estimate = stratified_f1(block_counts, block_strata)
    resampled = stratified_f1(block_counts, block_strata, weights)  # (R, M)
    tail = 100 * (1 - confidence) / 2

    def interval(point: float, samples: np.ndarray) -> Interval:
        low, high = np.percentile(samples, [tail, 100 - tail])
        return Interval(float(point), float(low), float(high))

    f1 = {name: interval(estimate[i], resampled[:, i]) for i, name in enumerate(models)}
    differences = {
        (models[i], models[j]): interval(estimate[i] - estimate[j], resampled[:, i] - resampled[:, j])
        for i in range(len(models)) for j in range(i + 1, len(models))
    }
    return BootstrapResult(tuple(models), f1, differences, n_resamples, n_blocks, confidence)


def describe_differences(result: BootstrapResult) -> list[str]:
    """One sentence per pair: whether its F1 difference is larger than the noise (the
    interval excludes 0) or not."""
    level = f"{100 * result.confidence:.0f} %"
    sentences = []
    for (first, second), diff in result.differences.items():
        span = f"{diff.estimate:+.3f} F1 ({level} interval {diff.low:+.3f} to {diff.high:+.3f})"
        if diff.excludes_zero():
            better, worse = (first, second) if diff.estimate > 0 else (second, first)
            sentences.append(f"{better} is ahead of {worse} by more than the noise: "
                             f"{first} − {second} = {span}.")
        else:
            sentences.append(f"{first} and {second} are not separated: {first} − {second} = "
                             f"{span}, an interval that includes 0.")
    return sentences
