"""Shared look of the figures: one colour per model, the same in every figure."""

from __future__ import annotations

from collections.abc import Iterable

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

PANEL_LETTERS = "abcdefghijklmnopqrstuvwxyz"
"""Subplot labels (a), (b), ... as in the paper's multi-panel figures."""


def model_colors(names: Iterable[str]) -> dict[str, tuple[float, float, float, float]]:
    """Map each model name, in order, to a colour of the ``tab10`` cycle (RGBA 0–1)."""
    palette = colormaps["tab10"]
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def panel_grid(
    n_panels: int, max_cols: int, panel_size: tuple[float, float], extra_width: float = 0.0
) -> tuple[Figure, list[Axes]]:
    """A figure with ``n_panels`` axes in rows of at most ``max_cols`` (unused cells removed).

    Args:
        n_panels: number of axes wanted (>= 1).
        max_cols: axes per row.
        panel_size: (width, height) of one panel in inches.
        extra_width: inches added to the figure width (e.g. for a colour bar).
    """
    if n_panels < 1:
        raise ValueError("a figure needs at least one panel")
    cols = min(n_panels, max_cols)
    rows = -(-n_panels // cols)
    fig = Figure(
        figsize=(panel_size[0] * cols + extra_width, panel_size[1] * rows), layout="constrained"
    )
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for unused in axes[n_panels:]:
        fig.delaxes(unused)
    return fig, axes[:n_panels]
