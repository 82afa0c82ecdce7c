"""Patch datasets: the Landslide4Sense reader, normalisation, augmentation, the DataModule.

Only the reader is re-exported here; ``slidemap.data.datamodule`` imports torch and
Lightning, so import it explicitly where needed.
"""

from slidemap.data.l4s import PatchRef, find_patches, read_image, read_mask, read_patch

__all__ = ["PatchRef", "find_patches", "read_image", "read_mask", "read_patch"]
