"""Writing figures to disk: the only file I/O of :mod:`slidemap.plots`."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from slidemap.io.atomic import atomic_path


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Save ``fig`` to ``path`` atomically; the format follows the suffix (.png, .pdf, .svg).

    Args:
        fig: a figure from one of the ``plot_*`` functions.
        path: destination file; its folder is created if needed.
        dpi: resolution of raster formats, dots per inch.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"{path}: give a file suffix (.png, .pdf, .svg) to choose the format")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".").lower())
    return path
