"""Random fields for the synthetic generator: fractal and smooth Gaussian noise, integer hashes.

Everything here is plain numpy and deterministic for a given :class:`numpy.random.Generator`
state. Fields are synthesised in the Fourier domain (spectral synthesis): white complex
noise shaped by an amplitude spectrum, then one inverse real FFT. Generating on a grid twice
as large as needed and cropping removes the periodicity an FFT field otherwise has.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def _frequency_radius(shape: tuple[int, int]) -> np.ndarray:
    """|k| in cycles per pixel on the half-spectrum grid of ``np.fft.rfft2``: (H, W//2+1)."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    radius = np.hypot(ky, kx)
    radius.flags.writeable = False  # cached: shared between calls
    return radius


def _synthesise(
    shape: tuple[int, int], full: tuple[int, int], amplitude: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Inverse FFT (grid ``full``) of white complex noise times ``amplitude`` (the rfft2
    half-spectrum of ``full``), cropped to ``shape``, zero mean and unit std."""
    half = (full[0], full[1] // 2 + 1)
    spectrum = (rng.standard_normal(half) + 1j * rng.standard_normal(half)) * amplitude
    field = np.fft.irfft2(spectrum, s=full)[: shape[0], : shape[1]]
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field


def fractal_noise(shape: tuple[int, int], rng: np.random.Generator, beta: float) -> np.ndarray:
    """Fractional-Brownian-like surface with power spectrum ``P(k) ∝ k**-beta``.

    ``beta = 2 H + 2`` for a surface of Hurst exponent ``H``; natural terrain has
    ``H ≈ 0.7–0.9`` (``beta ≈ 3.4–3.8``): rough at small scales, dominated by large ones.

    Returns:
        (H, W) float64, zero mean, unit standard deviation.
    """
    full = (2 * shape[0], 2 * shape[1])
    with np.errstate(divide="ignore"):
        amplitude = _frequency_radius(full) ** (-beta / 2.0)
    amplitude[0, 0] = 0.0  # no constant term
    return _synthesise(shape, full, amplitude, rng)


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, scale_px: float) -> np.ndarray:
    """Gaussian random field whose correlation length is about ``scale_px`` pixels.

    A field this smooth has no detail finer than ``scale_px``, so it is synthesised on a
    grid ``scale_px / 3`` times coarser and brought to ``shape`` by cubic interpolation.

    Returns:
        (H, W) float64, zero mean, unit standard deviation.
    """
    step = max(1, int(scale_px // 3))
    coarse_shape = (-(-shape[0] // step), -(-shape[1] // step))
    # Padding by three correlation lengths keeps opposite edges independent.
    pad = int(np.ceil(3.0 * scale_px / step))
    full = (coarse_shape[0] + pad, coarse_shape[1] + pad)
    amplitude = np.exp(-0.5 * (np.pi * _frequency_radius(full) * scale_px / step) ** 2)
    amplitude[0, 0] = 0.0
    field = _synthesise(coarse_shape, full, amplitude, rng)
    if step > 1:
        field = cubic_resample(
            field, fine_coordinates(0, shape[0], step), fine_coordinates(0, shape[1], step)
        )

    return (field - field.mean()) / max(float(field.std()), 1e-12)


def _cubic_weights(x: np.ndarray, n_in: int) -> tuple[int, np.ndarray]:
    """Cubic-convolution (Keys, a = -0.5) weights sampling an axis of ``n_in`` samples at
    fractional indices ``x``; edges clamped. Returns ``(first, W)`` with ``W`` of shape
    (len(x), window) acting on samples ``first : first + window``."""
    base = np.floor(x).astype(int)
    first = max(int(base.min()) - 1, 0)
    last = min(int(base.max()) + 2, n_in - 1)
    matrix = np.zeros((x.size, last - first + 1))
    rows = np.arange(x.size)
    for offset in range(-1, 3):
        d = np.abs(x - (base + offset))
        weight = np.where(d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2)
        np.add.at(matrix, (rows, np.clip(base + offset, 0, n_in - 1) - first), weight)
    return first, matrix


def cubic_resample(coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample a smooth (H, W) grid at fractional ``rows`` × ``cols`` indices (cubic, separable).

    Only the window of ``coarse`` that the samples need is touched, so a block of a large
    scene costs in proportion to the block.

    Returns:
        (len(rows), len(cols)) float64.
    """
    r0, w_rows = _cubic_weights(np.asarray(rows, dtype=np.float64), coarse.shape[0])
    c0, w_cols = _cubic_weights(np.asarray(cols, dtype=np.float64), coarse.shape[1])
    window = coarse[r0 : r0 + w_rows.shape[1], c0 : c0 + w_cols.shape[1]].astype(np.float64)
    return w_rows @ window @ w_cols.T


def fine_coordinates(start: int, count: int, factor: float) -> np.ndarray:
    """Fractional indices on a grid ``factor`` times coarser of fine pixels
    ``start … start + count - 1`` (pixel centres aligned, both grids share their corner)."""
    return (np.arange(start, start + count) + 0.5) / factor - 0.5


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def hash_uniform(seed: int, *keys: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) value per integer key tuple (splitmix64), same shape as the broadcast keys.

    Used for per-object draws (one value per field parcel) that must not depend on which
    tile of a scene is being rendered: the value is a function of global coordinates only.
    """
    with np.errstate(over="ignore"):
        h = np.full(np.broadcast(*keys).shape, np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15))
        for key in keys:
            h = h ^ (
                np.asarray(key).astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
            )
            h = (h ^ (h >> np.uint64(30))) * _MIX_1
            h = (h ^ (h >> np.uint64(27))) * _MIX_2
            h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
