"""Side-by-side prediction panels (the paper's Fig. 6 and 9), errors coloured.

One row per patch: the image (RGB, percentile stretch), the ground truth, then one column
per model whose prediction is coloured by outcome: true positive white (so a correct
prediction looks exactly like the truth column), false positive red, false negative blue,
true negative black, ignored pixels (mask 255) grey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from slidemap.data.l4s import IGNORE_INDEX

TN, TP, FP, FN, IGNORED = 0, 1, 2, 3, 4
OUTCOME_COLORS: tuple[tuple[str, str], ...] = (
    ("TN", "black"),
    ("TP", "white"),
    ("FP", "red"),
    ("FN", "blue"),
    ("ignored", "grey"),
)
"""(label, colour) of each outcome code, indexed by the code."""

_OUTCOME_STYLE = {
    "cmap": ListedColormap([color for _, color in OUTCOME_COLORS]),
    "vmin": 0,
    "vmax": len(OUTCOME_COLORS) - 1,
}


def percentile_stretch(image: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Contrast stretch for display, each channel on its own.

    Args:
        image: (C, H, W) any real dtype, any units; NaN/inf are ignored and shown as 0.
        low, high: percentiles mapped to 0 and 1.

    Returns:
        (H, W, C) float32 in [0, 1] (a constant channel gives 0).
    """
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {image.shape}")
    out = np.zeros((image.shape[1], image.shape[2], image.shape[0]), dtype=np.float32)
    for c, channel in enumerate(np.asarray(image, dtype=np.float64)):
        finite = np.isfinite(channel)
        if not finite.any():
            continue
        lo, hi = np.percentile(channel[finite], [low, high])
        if hi > lo:
            stretched = np.clip((channel - lo) / (hi - lo), 0.0, 1.0)
            out[..., c] = np.where(finite, stretched, 0.0)
    return out


def outcome_map(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel outcome codes (:data:`TN`, :data:`TP`, :data:`FP`, :data:`FN`, :data:`IGNORED`).

    Args:
        predicted: (H, W) bool or integer {0, 1}: the thresholded mask.
        truth: (H, W) integer {0, 1, 255}.

    Returns:
        (H, W) uint8 codes.
    """
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"prediction {predicted.shape} and truth {truth.shape} differ in shape")
    if not np.isin(predicted, (0, 1)).all():
        raise ValueError("prediction must be a binary mask (0/1); threshold probabilities first")
    positive_pred = predicted.astype(bool)
    positive_true = truth == 1
    codes = np.full(truth.shape, TN, dtype=np.uint8)
    codes[positive_pred & positive_true] = TP
    codes[positive_pred & ~positive_true] = FP
    codes[~positive_pred & positive_true] = FN
    codes[truth == IGNORE_INDEX] = IGNORED
    return codes


def plot_prediction_panels(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    predictions: Mapping[str, Sequence[np.ndarray]],
    ids: Sequence[str] | None = None,
    rgb_bands: tuple[int, int, int] = (0, 1, 2),
    panel_inches: float = 2.2,
) -> Figure:
    """Grid of patches (rows) × image, truth and each model's prediction (columns).

    Args:
        images: N arrays (C, H, W), any units (stretched for display).
        truths: N masks (H, W) {0, 1, 255}.
        predictions: model name -> N binary masks (H, W) {0, 1}, in the order of ``images``.
        ids: N patch names shown at the left of each row (optional).
        rgb_bands: channel indices of red, green, blue in ``images`` (for Landslide4Sense
            ``band_set.index("red")``, ``"green"``, ``"blue"``: 3, 2, 1).
        panel_inches: size of one square panel.

    Returns:
        Figure with N × (2 + number of models) axes and a legend of the outcome colours.
    """
    n = len(images)
    if n == 0:
        raise ValueError("no patches to plot")
    if len(truths) != n or any(len(masks) != n for masks in predictions.values()):
        raise ValueError(
            f"{n} images but {len(truths)} truths and "
            f"{ {m: len(v) for m, v in predictions.items()} } predictions; give one per image"
        )
    if ids is not None and len(ids) != n:
        raise ValueError(f"{n} images but {len(ids)} ids")
    titles = ["Image", "Ground truth", *predictions]
    fig = Figure(figsize=(panel_inches * len(titles), panel_inches * n + 0.6), layout="constrained")
    axes = fig.subplots(n, len(titles), squeeze=False)
    for row in range(n):
        truth = np.asarray(truths[row])
        shown = [
            (percentile_stretch(np.asarray(images[row])[list(rgb_bands)]), {}),
            (outcome_map(truth == 1, truth), _OUTCOME_STYLE),
            *((outcome_map(masks[row], truth), _OUTCOME_STYLE) for masks in predictions.values()),
        ]
        for col, (data, style) in enumerate(shown):
            ax = axes[row, col]
            ax.imshow(data, interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col])
        if ids is not None:
            axes[row, 0].set_ylabel(str(ids[row]))
    fig.legend(
        handles=[
            Patch(facecolor=color, edgecolor="black", label=label)
            for label, color in OUTCOME_COLORS
        ],
        loc="outside lower center",
        ncols=len(OUTCOME_COLORS),
    )
    return fig
