"""Score a trained checkpoint on one split: metrics over all pixels, curves, ``metrics.json``.

:func:`evaluate_checkpoint` runs every patch of the split through the one inference path
(:func:`slidemap.inference.patches.patch_outputs`, the loop ``predict`` writes its
``mask_<id>.h5`` files from), with the same engine choice and the same post-processing
setting, and accumulates (a) the exact confusion matrix of those masks, (b) the
probability histograms of :class:`~slidemap.evaluation.curves.BinnedCurves` for ROC and PR
and (c) the calibration bins of :class:`~slidemap.evaluation.calibration.CalibrationBins`
(expected calibration error, reliability diagram). So the scores are those of the
submission files ``predict`` would write, test-time augmentation and ensembles included.
Memory is bounded by one batch plus the patches kept for the panels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slidemap.bands import BandSet
from slidemap.config import check_threshold
from slidemap.data.l4s import split_refs
from slidemap.evaluation.calibration import CalibrationBins
from slidemap.evaluation.curves import BinnedCurves, compute_metrics
from slidemap.evaluation.metrics import ConfusionCounts
from slidemap.inference.patches import patch_outputs
from slidemap.inference.postprocess import PostprocessConfig
from slidemap.inference.predictor import Predictor, load_predictor
from slidemap.io.atomic import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class PatchPrediction:
    """One patch kept for the prediction panels.

    Attributes:
        bands: ``(C, H, W)`` float32 band stack in stored units (no features).
        truth: ``(H, W)`` uint8 {0, 1, 255}.
        probability: ``(H, W)`` float32 landslide probability.
        mask: ``(H, W)`` uint8 predicted mask (thresholded, post-processed if asked): the
            pixels the confusion matrix counts.
    """

    bands: np.ndarray
    truth: np.ndarray
    probability: np.ndarray
    mask: np.ndarray


@dataclass
class Evaluation:
    """Result of :func:`evaluate_checkpoint`.

    Attributes:
        metrics: every ``metrics.json`` score (SPEC), threshold included, then ``ece``
            (numbers only).
        curves: probability histograms (ROC, PR).
        counts: exact confusion matrix of the predicted masks.
        record: how the probabilities and masks were made: ``engine`` (the kind run),
            ``tta``, ``checkpoint`` (a list for an ensemble), ``ensemble_size``,
            ``threshold_rule`` and ``postprocess`` (``false`` or its settings).
        samples: patch id -> :class:`PatchPrediction`, for the ids asked for.
        model_name: registry name of the network.
        band_set: the checkpoint's band set (names the channels of ``PatchPrediction.bands``).
        patch_counts: patch id -> its ``(tp, fp, fn, tn)`` int64 (they sum to ``counts``),
            for bootstraps over patches.
    """

    metrics: dict[str, float | int]
    curves: BinnedCurves
    counts: ConfusionCounts
    record: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, PatchPrediction] = field(default_factory=dict)
    model_name: str = ""
    band_set: BandSet | None = None
    calibration: CalibrationBins = field(default_factory=CalibrationBins)
    patch_counts: dict[str, np.ndarray] = field(default_factory=dict)


def evaluate_checkpoint(
    checkpoint: str | Path | Sequence[str | Path] | Predictor,
    data: str | Path,
    split: str | None = "test",
    threshold: float | None = None,
    batch_size: int = 8,
    keep_ids: Sequence[str] = (),
    *,
    engine: str = "auto",
    postprocess: PostprocessConfig | None = None,
    device: str = "auto",
    precision: str = "fp32",
    calibration: str | Path | None = None,
    tta: bool = False,
) -> Evaluation:
    """Score ``checkpoint`` on all pixels of a split.

    Args:
        checkpoint: a ``.ckpt`` path, several (an ensemble), or a
            :class:`~slidemap.inference.predictor.Predictor`.
        data: a dataset root or one split folder.
        split: ``train``, ``valid`` or ``test`` (ignored for a split folder).
        threshold: probability threshold; ``None`` = the checkpoint's (validation best F1).
        batch_size: patches per forward pass.
        keep_ids: patches whose bands, truth, probability and mask are kept (for panels).
        engine: ``auto`` (torch for patches), ``torch`` or ``onnx``; ignored for a predictor.
        postprocess: the mask cleaning ``predict --postprocess`` applies; ``None`` (the
            default of both commands on patches) thresholds only.
        device: torch device of the torch engine (``auto``: CUDA when available).
        precision: ``fp32``, ``bf16`` or ``int8`` (``calibration``: int8's training
            patches); ignored for a predictor.
        tta: test-time augmentation (8 flips and rotations); ignored for a predictor.

    Raises:
        CheckpointError, InputError, ConfigError: bad checkpoint, data or threshold.
    """
    predictor = (checkpoint if isinstance(checkpoint, Predictor)
                 else load_predictor(checkpoint, engine, "patches", device, tta=tta,
                                     precision=precision, calibration=calibration))
    given = threshold
    threshold = predictor.threshold if threshold is None else check_threshold(threshold)
    refs = split_refs(data, split)
    curves = BinnedCurves()
    calibration = CalibrationBins()
    counts = ConfusionCounts()
    keep = set(keep_ids)
    samples: dict[str, PatchPrediction] = {}
    patch_counts: dict[str, np.ndarray] = {}
    for output in patch_outputs(predictor, refs, threshold=threshold, postprocess=postprocess,
                                batch_size=batch_size, with_truth=True):
        assert output.truth is not None  # with_truth
        truth = torch.from_numpy(output.truth)
        curves.update(torch.from_numpy(output.probability), truth)
        calibration.update(output.probability, truth)
        patch = ConfusionCounts.from_predictions(torch.from_numpy(output.mask), truth)
        counts = counts + patch
        patch_counts[output.ref.id] = np.array([patch.tp, patch.fp, patch.fn, patch.tn],
                                               dtype=np.int64)
        if output.ref.id in keep:
            samples[output.ref.id] = PatchPrediction(output.bands, output.truth,
                                                     output.probability, output.mask)
    metrics: dict[str, float | int] = {**compute_metrics(curves, float(threshold), counts=counts),
                                       "ece": calibration.ece()}
    record = {**predictor.record(), "threshold_rule": predictor.threshold_rule(given),
              "postprocess": False if postprocess is None else asdict(postprocess)}
    log.info("%s on %d patches: F1 %.4f, IoU %.4f at threshold %.3f, ECE %.4f (%s engine%s)",
             record["checkpoint"] or predictor.model_name, len(refs), metrics["f1"],
             metrics["iou"], threshold, metrics["ece"], record["engine"],
             ", TTA" if predictor.tta else "")
    return Evaluation(metrics=metrics, curves=curves, counts=counts, record=record,
                      samples={i: samples[i] for i in keep_ids if i in samples},
                      model_name=predictor.model_name, band_set=predictor.pipeline.band_set,
                      calibration=calibration, patch_counts=patch_counts)


def json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    """NaN (e.g. ROC-AUC without landslides) as ``null``, so the file is strict JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def write_metrics(evaluation: Evaluation, path: str | Path) -> Path:
    """``metrics.json``: every SPEC key in order, ``ece``, then how they were made
    (``engine``, ``tta``, ``checkpoint``, ``ensemble_size``, ``threshold_rule``,
    ``postprocess``) and the reliability diagram's bins (``calibration``); strict JSON,
    written atomically."""
    content = {**json_safe(evaluation.metrics), **evaluation.record,
               "calibration": evaluation.calibration.to_dict()}
    return write_json_atomic(path, content)
