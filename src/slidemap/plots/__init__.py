"""slidemap.plots: every figure, each a function from data to a Matplotlib ``Figure``.

The functions build :class:`matplotlib.figure.Figure` objects directly (no ``pyplot``, no
global state, any backend); :func:`save_figure` is the only one that writes a file.
"""

from slidemap.plots.io import save_figure

__all__ = ["save_figure"]
