"""Checkpoint files that appear atomically, through Lightning's public ``CheckpointIO`` plugin.

Lightning serialises a checkpoint fully before writing, but writes it in place: a kill
during the write leaves a truncated ``best.ckpt``/``last.ckpt`` under its final name, and
``--resume`` then fails on it. :class:`AtomicCheckpointIO` writes the bytes to a temporary
name in the same folder, fsyncs and renames (:func:`slidemap.io.atomic.write_bytes_atomic`),
so the file under its name is always either the previous checkpoint or the new one.
Lightning calls the plugin on the global-zero process only; the callbacks that decide when
to save (``ModelCheckpoint``) are Lightning's own, unmodified.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from slidemap.io.atomic import write_bytes_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose :meth:`save_checkpoint` is atomic (temporary name, fsync, rename)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomic(path, buffer.getvalue())
