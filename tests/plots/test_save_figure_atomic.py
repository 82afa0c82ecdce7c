"""save_figure writes a complete file atomically, format by suffix."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from slidemap.plots import save_figure


def test_png_and_svg_are_written_without_temporaries(tmp_path: Path) -> None:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    png = save_figure(fig, tmp_path / "sub" / "fig.png", dpi=50)
    svg = save_figure(fig, tmp_path / "sub" / "fig.svg")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in svg.read_bytes()
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig.png", "fig.svg"]


def test_path_without_suffix_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="suffix"):
        save_figure(Figure(), tmp_path / "fig")


def test_multi_panel_figures_render(tmp_path: Path) -> None:
    import numpy as np

    from slidemap.evaluation.metrics import ConfusionCounts
    from slidemap.plots.confusion import plot_confusion_matrices
    from slidemap.plots.panels import plot_prediction_panels

    truth = np.eye(8, dtype=np.uint8)
    figures = {
        "confusion.png": plot_confusion_matrices({"a": ConfusionCounts(1, 2, 3, 4)}),
        "panels.png": plot_prediction_panels([np.ones((3, 8, 8))], [truth], {"m": [truth]}),
    }
    from matplotlib.image import imread

    for name, fig in figures.items():
        pixels = imread(save_figure(fig, tmp_path / name, dpi=30))
        height, width = pixels.shape[:2]
        assert height > 30 and width > 30  # the whole figure, cropped to its content
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10  # not blank
