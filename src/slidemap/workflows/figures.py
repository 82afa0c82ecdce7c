"""The paper's figure sets, from evaluations and checkpoints to PNG files.

Each figure is drawn by a function of :mod:`slidemap.plots` (data in, ``Figure`` out); this
module gathers the data and writes the files. What a trained model sees (its band set,
pixel size, pipeline and statistics) is read from its checkpoint, never from a config.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from slidemap.config import ActivationsConfig
from slidemap.data.l4s import LANDSLIDE, PatchRef, read_image, read_mask
from slidemap.errors import ConfigError
from slidemap.models.checkpoint import load_checkpoint, read_trained_setup
from slidemap.plots.activations import capture_activation, plot_activations
from slidemap.plots.calibration import plot_reliability
from slidemap.plots.confusion import plot_confusion_matrices
from slidemap.plots.curves import plot_training_curves
from slidemap.plots.features import plot_feature_maps
from slidemap.plots.io import save_figure
from slidemap.plots.panels import plot_prediction_panels
from slidemap.plots.roc import plot_pr_curves, plot_roc_curves
from slidemap.workflows.evaluate import Evaluation

log = logging.getLogger(__name__)


def select_panel_ids(refs: Sequence[PatchRef], count: int, wanted: Sequence[str] = ()) -> list[str]:
    """Ids for prediction panels: ``wanted`` if given (checked), else the ``count`` patches
    with the most landslide pixels (ties by id order)."""
    ids = [ref.id for ref in refs]
    if wanted:
        missing = [i for i in wanted if i not in ids]
        if missing:
            raise ConfigError(f"panel patch ids {missing} are not in the split (it has {len(ids)} patches)")
        return list(wanted)
    positives = [int((read_mask(ref.mask) == LANDSLIDE).sum()) for ref in refs]
    order = sorted(range(len(refs)), key=lambda i: -positives[i])
    return [ids[i] for i in order[:count]]


def panel_inputs(
    evaluations: Mapping[str, Evaluation], ids: Sequence[str]
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Images, truths and each model's predicted masks for ``plot_prediction_panels``."""
    first = next(iter(evaluations.values()))
    images = [first.samples[i].bands for i in ids]
    truths = [first.samples[i].truth for i in ids]
    predictions = {name: [ev.samples[i].mask for i in ids] for name, ev in evaluations.items()}
    return images, truths, predictions


def write_evaluation_figures(
    evaluations: Mapping[str, Evaluation], out_dir: str | Path, panel_ids: Sequence[str] = ()
) -> dict[str, Path]:
    """ROC, PR, confusion matrices, reliability diagram and prediction panels of one or
    more models.

    The panels show the true colour of the first model's band set (its checkpoint's).

    Returns:
        figure key (``roc``, ``pr``, ``confusion``, ``calibration``, ``panels``) -> written
        PNG path.
    """
    out_dir = Path(out_dir)
    curves = {name: ev.curves for name, ev in evaluations.items()}
    points = {name: float(ev.metrics["threshold"]) for name, ev in evaluations.items()}
    written = {
        "roc": save_figure(plot_roc_curves(curves, points), out_dir / "roc.png"),
        "pr": save_figure(plot_pr_curves(curves, points), out_dir / "pr.png"),
        "confusion": save_figure(
            plot_confusion_matrices({name: ev.counts for name, ev in evaluations.items()}),
            out_dir / "confusion.png"),
        "calibration": save_figure(
            plot_reliability({name: ev.calibration for name, ev in evaluations.items()}),
            out_dir / "calibration.png"),
    }
    ids = [i for i in panel_ids if all(i in ev.samples for ev in evaluations.values())]
    band_set = next(iter(evaluations.values())).band_set
    if ids and band_set is not None and band_set.has_rgb():
        images, truths, predictions = panel_inputs(evaluations, ids)
        written["panels"] = save_figure(
            plot_prediction_panels(images, truths, predictions, ids=ids,
                                   rgb_bands=band_set.rgb_indices("the prediction panels")),
            out_dir / "panels.png")
    elif ids:
        log.info("no prediction panels: band set %r has no red, green and blue bands",
                 getattr(band_set, "name", None))
    return written


def write_training_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]], path: str | Path
) -> Path:
    """Per-epoch loss, precision, recall and F1 of ``metrics.csv`` rows, one colour per
    run (the paper's Fig. 4, 7, 8), to ``path``."""
    return save_figure(plot_training_curves(dict(histories)), path)


def write_features_figure(checkpoint: str | Path, ref: PatchRef, path: str | Path) -> Path:
    """The paper's Fig. 2 for one patch, with the band set and pixel size the checkpoint's
    model was trained with."""
    pipeline = read_trained_setup(checkpoint).pipeline
    bands = read_image(ref.image, n_bands=len(pipeline.band_set))
    figure = plot_feature_maps(bands, pipeline.band_set, pipeline.pixel_size_m,
                               title=f"patch {ref.id}")
    return save_figure(figure, path)


def write_activations_figure(
    checkpoint: str | Path, wanted: ActivationsConfig, ref: PatchRef, path: str | Path
) -> Path:
    """The paper's Fig. 3: the maps of ``wanted.layer`` of the checkpoint's network for one
    patch, whose input is made with the checkpoint's pipeline and statistics.

    The network is observed from inside (a forward hook), so this reads the model itself;
    probabilities are never made here.
    """
    loaded = load_checkpoint(checkpoint)
    bands = read_image(ref.image, n_bands=len(loaded.pipeline.band_set))
    model_input = loaded.stats.apply(loaded.pipeline(bands))
    with torch.inference_mode():
        maps = capture_activation(loaded.model, wanted.layer,
                                  torch.from_numpy(model_input).unsqueeze(0))[0]
    figure = plot_activations(maps, f"{wanted.model}: {wanted.layer}", wanted.max_channels)
    return save_figure(figure, path)
