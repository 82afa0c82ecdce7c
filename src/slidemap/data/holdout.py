"""Validation on spatial blocks of the training areas (no separate validation area needed).

Patches of one area overlap (the rgbd areas: 128 px patches at a 64 px stride), so a random
patch split would validate on pixels that were trained on. :func:`spatial_block_split`
instead places every patch on its scene's grid by its ``<row>_<col>`` id, cuts each area's
grid into square blocks, holds out a share of the blocks for validation and drops every
training patch that overlaps a held-out one: no validation pixel is ever trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slidemap.data.l4s import PatchRef, grid_position, read_image
from slidemap.errors import ConfigError


def spatial_block_split(
    refs: Sequence[PatchRef], fraction: float, block_px: int, seed: int = 0,
    patch_px: int | None = None,
) -> tuple[list[PatchRef], list[PatchRef]]:
    """``(train, valid)`` patches: a ``fraction`` of each area's blocks is validation.

    Args:
        refs: patches with ids ``[<area>/]<row>_<col>`` (pixel offsets in their scene).
        fraction: share of each area's occupied blocks held out (at least one block per
            area), in (0, 1).
        block_px: block side in scene pixels.
        seed: which blocks are drawn.
        patch_px: patch side in pixels; ``None`` reads it from the first image.

    Returns:
        Training patches (none overlapping a validation patch) and validation patches, each
        in the order of ``refs``.

    Raises:
        ConfigError: a bad fraction or block size, an id without a grid position, or no
            training patch left.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"'data.holdout.fraction' must lie in (0, 1), got {fraction}")
    if block_px < 1:
        raise ConfigError(f"'data.holdout.block_px' must be positive, got {block_px}")
    positions = []
    for ref in refs:
        position = grid_position(ref.id)
        if position is None:
            raise ConfigError(
                f"a spatial block split needs patch ids <row>_<col> (pixel offsets), but patch "
                f"{ref.id!r} ({ref.image}) has none; give data.val_path instead")
        positions.append(position)
    if patch_px is None:
        patch_px = int(read_image(refs[0].image).shape[-1]) if refs else 0
    blocks = [(area, row // block_px, col // block_px) for area, row, col in positions]
    rng = np.random.default_rng(seed)
    held: set[tuple[str, int, int]] = set()
    for area in sorted({b[0] for b in blocks}):
        own = sorted({b for b in blocks if b[0] == area})
        count = min(max(1, round(fraction * len(own))), len(own))
        held.update(own[i] for i in rng.choice(len(own), size=count, replace=False))
    valid = [i for i, block in enumerate(blocks) if block in held]
    by_area: dict[str, np.ndarray] = {}
    for area in {positions[i][0] for i in valid}:
        by_area[area] = np.array([positions[i][1:] for i in valid if positions[i][0] == area])

    def overlaps_validation(i: int) -> bool:
        area, row, col = positions[i]
        held_rc = by_area.get(area)
        if held_rc is None:
            return False
        return bool(np.any((np.abs(held_rc[:, 0] - row) < patch_px)
                           & (np.abs(held_rc[:, 1] - col) < patch_px)))

    held_ids = set(valid)
    train = [ref for i, ref in enumerate(refs) if i not in held_ids and not overlaps_validation(i)]
    if not train:
        raise ConfigError(
            f"the spatial block split (fraction {fraction}, blocks of {block_px} px) leaves no "
            "training patch; lower data.holdout.fraction or data.holdout.block_px")
    return train, [refs[i] for i in valid]
