"""Geometric augmentation: the 8 symmetries of the square (dihedral group D4).

Flips and 90° rotations are the augmentations that keep every pixel value and the pixel
grid, so image and mask stay aligned exactly and no interpolation touches the reflectances.
Satellite imagery has no preferred "up", so all 8 are equally plausible. Note that they
also flip/rotate the *direction* of terrain (a north-facing slope becomes east-facing):
orientation-sensitive channels such as hillshade are transformed as images, not recomputed.
"""

from __future__ import annotations

import numpy as np

#: Number of distinct transforms: 4 rotations × (flipped or not).
N_DIHEDRAL = 8


def apply_dihedral(
    image: np.ndarray, mask: np.ndarray | None, transform: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply dihedral transform ``transform`` (0–7) to an image and its mask alike.

    ``transform = 4·flip + k``: rotate by ``k × 90°`` counter-clockwise, then (if ``flip``)
    mirror left–right. 0 is the identity.

    Args:
        image: ``(C, H, W)`` any dtype. mask: ``(H, W)`` or ``None``.
        transform: integer in ``[0, 8)``.

    Returns:
        C-contiguous ``(image, mask)``; ``H`` and ``W`` swap for odd ``k`` on non-square input.
    """
    if not 0 <= transform < N_DIHEDRAL:
        raise ValueError(f"transform must be in [0, {N_DIHEDRAL}), got {transform}")
    flip, quarter_turns = divmod(int(transform), 4)

    def move(array: np.ndarray) -> np.ndarray:
        out = np.rot90(array, k=quarter_turns, axes=(-2, -1))
        if flip:
            out = np.flip(out, axis=-1)
        return np.ascontiguousarray(out)

    return move(image), None if mask is None else move(mask)


def invert_dihedral(array: np.ndarray, transform: int) -> np.ndarray:
    """Undo :func:`apply_dihedral`'s ``transform`` on ``array`` (last two axes: rows, columns).

    For ``transform = 4·flip + k``: mirror left–right back (if ``flip``), then rotate by
    ``k × 90°`` clockwise. ``invert_dihedral(apply_dihedral(x, None, t)[0], t) == x`` for every
    ``t``; test-time augmentation maps each variant's prediction back with it.

    Returns:
        C-contiguous array; ``H`` and ``W`` swap back for odd ``k``.
    """
    if not 0 <= transform < N_DIHEDRAL:
        raise ValueError(f"transform must be in [0, {N_DIHEDRAL}), got {transform}")
    flip, quarter_turns = divmod(int(transform), 4)
    out = np.flip(array, axis=-1) if flip else array
    return np.ascontiguousarray(np.rot90(out, k=-quarter_turns, axes=(-2, -1)))


def random_dihedral(
    image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply one of the 8 dihedral transforms, drawn uniformly from ``rng``, to both arrays."""
    return apply_dihedral(image, mask, int(rng.integers(N_DIHEDRAL)))
