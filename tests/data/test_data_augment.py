"""Dihedral augmentation keeps image and mask aligned and covers all 8 symmetries."""

from __future__ import annotations

import numpy as np
import pytest

from slidemap.data.augment import N_DIHEDRAL, apply_dihedral, invert_dihedral, random_dihedral


def coordinate_image(height: int = 5, width: int = 5) -> np.ndarray:
    """(2, H, W): channel 0 holds each pixel's row, channel 1 its column."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows, cols]).astype(np.float32)


def coordinate_mask(height: int = 5, width: int = 5) -> np.ndarray:
    """Mask whose value encodes the pixel position (row * width + col)."""
    return np.arange(height * width).reshape(height, width)


@pytest.mark.parametrize("transform", range(N_DIHEDRAL))
def test_image_and_mask_move_together(transform: int) -> None:
    image, mask = coordinate_image(4, 6), coordinate_mask(4, 6)
    moved_image, moved_mask = apply_dihedral(image, mask, transform)
    assert moved_mask is not None and moved_image.flags.c_contiguous
    # every output pixel's mask must still be the one of the source pixel its image came from
    source_rows, source_cols = moved_image[0].astype(int), moved_image[1].astype(int)
    np.testing.assert_array_equal(moved_mask, mask[source_rows, source_cols])


def test_the_eight_transforms_are_distinct_and_zero_is_identity() -> None:
    image = coordinate_image()
    outputs = {apply_dihedral(image, None, t)[0].tobytes() for t in range(N_DIHEDRAL)}
    assert len(outputs) == N_DIHEDRAL
    np.testing.assert_array_equal(apply_dihedral(image, None, 0)[0], image)
    with pytest.raises(ValueError):
        apply_dihedral(image, None, 8)


def test_random_dihedral_is_seeded_and_uses_all_transforms() -> None:
    image, mask = coordinate_image(), coordinate_mask()

    def draws(seed: int) -> list[bytes]:
        rng = np.random.default_rng(seed)
        return [random_dihedral(image, mask, rng)[0].tobytes() for _ in range(64)]

    assert draws(3) == draws(3) and draws(3) != draws(4)
    assert len(set(draws(3))) == N_DIHEDRAL


@pytest.mark.parametrize("transform", range(N_DIHEDRAL))
def test_invert_dihedral_undoes_each_transform_on_non_square_batches(transform: int) -> None:
    batch = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    moved = apply_dihedral(batch, None, transform)[0]
    assert moved.shape[-2:] == ((7, 5) if transform % 2 else (5, 7))
    np.testing.assert_array_equal(invert_dihedral(moved, transform), batch)
    # and on the (B, H, W) probabilities a network returns for the moved batch
    np.testing.assert_array_equal(invert_dihedral(moved[:, 0], transform), batch[:, 0])
