"""Score a trained checkpoint on one split: metrics over all pixels, curves, figures.

:func:`evaluate_checkpoint` runs the network over every patch of the split once,
accumulating (a) the exact confusion matrix at the threshold and (b) the probability
histograms of :class:`~slidemap.evaluation.curves.BinnedCurves` for ROC and PR; memory is
bounded by one batch plus the predictions kept for the panels. :func:`write_evaluation`
writes ``metrics.json`` (every SPEC key) and the figures.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from slidemap.data.datamodule import PatchDataset
from slidemap.data.l4s import PatchRef, dataset_layout, find_patches, read_mask
from slidemap.evaluation.curves import BinnedCurves, compute_metrics
from slidemap.evaluation.metrics import ConfusionCounts
from slidemap.io.atomic import write_text_atomic
from slidemap.io.checkpoint import LoadedModel, load_checkpoint

log = logging.getLogger(__name__)


@dataclass
class PatchPrediction:
    """One patch kept for the prediction panels.

    Attributes:
        bands: ``(C, H, W)`` float32 band stack in stored units (no features).
        truth: ``(H, W)`` uint8 {0, 1, 255}.
        probability: ``(H, W)`` float32 landslide probability.
    """

    bands: np.ndarray
    truth: np.ndarray
    probability: np.ndarray


@dataclass
class Evaluation:
    """Result of :func:`evaluate_checkpoint`.

    Attributes:
        metrics: every ``metrics.json`` key (SPEC), threshold included.
        curves: probability histograms (ROC, PR).
        counts: exact confusion matrix at ``metrics["threshold"]``.
        samples: patch id -> :class:`PatchPrediction`, for the ids asked for.
        model_name: registry name of the network.
        rgb_bands: channel indices of red, green, blue in ``PatchPrediction.bands``.
        patch_counts: patch id -> its ``(tp, fp, fn, tn)`` int64 at the threshold (they
            sum to ``counts``), for bootstraps over patches.
    """

    metrics: dict[str, float | int]
    curves: BinnedCurves
    counts: ConfusionCounts
    samples: dict[str, PatchPrediction] = field(default_factory=dict)
    model_name: str = ""
    rgb_bands: tuple[int, int, int] = (0, 1, 2)
    patch_counts: dict[str, np.ndarray] = field(default_factory=dict)


def split_refs(data: str | Path, split: str | None = "test") -> list[PatchRef]:
    """Labelled patches of ``split`` in a root, or of ``data`` itself when it is one split folder."""
    layout = dataset_layout(data)
    return find_patches(data, split=split if layout in ("root", "public") else None)


def select_panel_ids(refs: Sequence[PatchRef], count: int, wanted: Sequence[str] = ()) -> list[str]:
    """Ids for prediction panels: ``wanted`` if given (checked), else the ``count`` patches
    with the most landslide pixels (ties by id order)."""
    ids = [ref.id for ref in refs]
    if wanted:
        missing = [i for i in wanted if i not in ids]
        if missing:
            from slidemap.errors import ConfigError

            raise ConfigError(f"panel patch ids {missing} are not in the split (it has {len(ids)} patches)")
        return list(wanted)
    positives = [int((read_mask(ref.mask) == 1).sum()) for ref in refs]
    order = sorted(range(len(refs)), key=lambda i: -positives[i])
    return [ids[i] for i in order[:count]]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def predict_split(
    loaded: LoadedModel, refs: Sequence[PatchRef], batch_size: int = 8, device: str = "auto"
) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """Landslide probabilities of every patch, batch by batch.

    Yields:
        ``(ids, probability (B, H, W) float32 on CPU, mask (B, H, W) int64)``.
    """
    dataset = PatchDataset(refs, loaded.pipeline, stats=loaded.stats, augment=False, cache=False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    target_device = resolve_device(device)
    model = loaded.model.to(target_device).eval()
    with torch.inference_mode():
        for batch in loader:
            logits = model(batch["image"].to(target_device))
            yield list(batch["id"]), torch.sigmoid(logits.float()).squeeze(1).cpu(), batch["mask"]


def evaluate_checkpoint(
    checkpoint: str | Path | LoadedModel,
    data: str | Path,
    split: str | None = "test",
    threshold: float | None = None,
    batch_size: int = 8,
    keep_ids: Sequence[str] = (),
    device: str = "auto",
) -> Evaluation:
    """Score ``checkpoint`` on all pixels of a split.

    Args:
        checkpoint: a ``.ckpt`` path or an already loaded model.
        data: a dataset root or one split folder.
        split: ``train``, ``valid`` or ``test`` (ignored for a split folder).
        threshold: probability threshold; ``None`` = the checkpoint's (validation best F1).
        batch_size: patches per forward pass.
        keep_ids: patches whose bands, truth and probability are kept (for panels).
        device: ``auto``, ``cpu``, ``cuda``...

    Raises:
        CheckpointError, InputError, ConfigError: bad checkpoint, data or threshold.
    """
    loaded = checkpoint if isinstance(checkpoint, LoadedModel) else load_checkpoint(checkpoint)
    if threshold is None:
        threshold = loaded.threshold
    if not 0.0 <= threshold <= 1.0:
        from slidemap.errors import ConfigError

        raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
    refs = split_refs(data, split)
    curves = BinnedCurves()
    counts = ConfusionCounts()
    keep = set(keep_ids)
    probabilities: dict[str, np.ndarray] = {}
    patch_counts: dict[str, np.ndarray] = {}
    for ids, prob, mask in predict_split(loaded, refs, batch_size, device):
        curves.update(prob, mask)
        counts = counts + ConfusionCounts.from_predictions(prob >= threshold, mask)
        patch_counts.update(zip(ids, per_patch_counts(prob >= threshold, mask), strict=True))
        for i, patch_id in enumerate(ids):
            if patch_id in keep:
                probabilities[patch_id] = prob[i].numpy()
    n_bands = len(loaded.pipeline.band_set)
    dataset = PatchDataset([r for r in refs if r.id in probabilities], loaded.pipeline)
    samples = {}
    for index, ref in enumerate(dataset.refs):
        stacked, truth = dataset.load(index)
        samples[ref.id] = PatchPrediction(stacked[:n_bands], truth, probabilities[ref.id])
    band_set = loaded.pipeline.band_set
    rgb = tuple(band_set.index(role) for role in ("red", "green", "blue")) if all(
        band_set.has(role) for role in ("red", "green", "blue")) else (0, 1, 2)
    metrics = compute_metrics(curves, float(threshold), counts=counts)
    log.info("%s on %d patches: F1 %.4f, IoU %.4f at threshold %.3f", loaded.path, len(refs),
             metrics["f1"], metrics["iou"], threshold)
    return Evaluation(metrics=metrics, curves=curves, counts=counts,
                      samples={i: samples[i] for i in keep_ids if i in samples},
                      model_name=loaded.model_name, rgb_bands=rgb,  # type: ignore[arg-type]
                      patch_counts=patch_counts)


def per_patch_counts(predicted: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """``(B, 4)`` int64 ``(tp, fp, fn, tn)`` of each patch; pixels labelled 255 are ignored.

    Args:
        predicted: ``(B, H, W)`` bool. mask: ``(B, H, W)`` integer {0, 1, 255}.
    """
    truth, labelled = mask == 1, (mask == 0) | (mask == 1)
    predicted = predicted & labelled
    tp = (predicted & truth).flatten(1).sum(1)
    fp = (predicted & ~truth).flatten(1).sum(1)
    fn = (~predicted & truth).flatten(1).sum(1)
    tn = labelled.flatten(1).sum(1) - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], dim=1).to(torch.int64).numpy()


def json_safe(metrics: dict[str, float | int]) -> dict[str, float | int | None]:
    """NaN (e.g. ROC-AUC without landslides) as ``null``, so the file is strict JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def write_metrics(metrics: dict[str, float | int], path: str | Path) -> Path:
    """``metrics.json`` (strict JSON, keys in SPEC order), atomically."""
    return write_text_atomic(path, json.dumps(json_safe(metrics), indent=2) + "\n")


def panel_inputs(
    evaluations: dict[str, Evaluation], ids: Sequence[str]
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Images, truths and each model's binary masks for ``plot_prediction_panels``."""
    first = next(iter(evaluations.values()))
    images = [first.samples[i].bands for i in ids]
    truths = [first.samples[i].truth for i in ids]
    predictions = {
        name: [(ev.samples[i].probability >= ev.metrics["threshold"]).astype(np.uint8) for i in ids]
        for name, ev in evaluations.items()
    }
    return images, truths, predictions


def write_figures(evaluations: dict[str, Evaluation], out_dir: str | Path,
                  panel_ids: Sequence[str] = ()) -> dict[str, Path]:
    """ROC, PR, confusion matrices and prediction panels of one or more models.

    Returns:
        figure key (``roc``, ``pr``, ``confusion``, ``panels``) -> written PNG path.
    """
    from slidemap.plots.confusion import plot_confusion_matrices
    from slidemap.plots.io import save_figure
    from slidemap.plots.panels import plot_prediction_panels
    from slidemap.plots.roc import plot_pr_curves, plot_roc_curves

    out_dir = Path(out_dir)
    curves = {name: ev.curves for name, ev in evaluations.items()}
    points = {name: float(ev.metrics["threshold"]) for name, ev in evaluations.items()}
    written = {
        "roc": save_figure(plot_roc_curves(curves, points), out_dir / "roc.png"),
        "pr": save_figure(plot_pr_curves(curves, points), out_dir / "pr.png"),
        "confusion": save_figure(
            plot_confusion_matrices({name: ev.counts for name, ev in evaluations.items()}),
            out_dir / "confusion.png"),
    }
    ids = [i for i in panel_ids if all(i in ev.samples for ev in evaluations.values())]
    if ids:
        images, truths, predictions = panel_inputs(evaluations, ids)
        rgb = next(iter(evaluations.values())).rgb_bands
        written["panels"] = save_figure(
            plot_prediction_panels(images, truths, predictions, ids=ids, rgb_bands=rgb),
            out_dir / "panels.png")
    return written
