"""Weight averaging through Lightning's ``WeightAveraging`` callback: EMA or SWA.

Lightning (2.6) keeps an :class:`torch.optim.swa_utils.AveragedModel` beside the model,
swaps the averaged weights in for validation, writes them as the checkpoint's
``state_dict`` (the plain weights go to ``current_model_state``, which a resume restores)
and copies them into the model when training ends. :class:`AveragedWeights` adds one thing:
before the first weights enter the average (``start_epoch``), validation and checkpoints
use the plain weights, never the average's untouched copy of the initial network.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn


class AveragedWeights(WeightAveraging):
    """EMA (``kind="ema"``: after every optimiser step, ``decay`` per step) or SWA
    (``kind="swa"``: equal-weight average of the end-of-epoch weights) from epoch
    ``start_epoch`` (0-based) on."""

    def __init__(self, kind: str, decay: float = 0.999, start_epoch: int = 0) -> None:
        if kind not in ("ema", "swa"):
            raise ValueError(f"weight averaging must be 'ema' or 'swa', got {kind!r}")
        extra: dict[str, Any] = {"multi_avg_fn": get_ema_multi_avg_fn(decay)} if kind == "ema" else {}
        super().__init__(**extra)
        self.kind = kind
        self.start_epoch = int(start_epoch)
        self._epoch = 0

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if self.kind == "ema":
            return step_idx is not None and self._epoch >= self.start_epoch
        return epoch_idx is not None and epoch_idx >= self.start_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = trainer.current_epoch

    def averaging(self) -> bool:
        """Whether any weights have entered the average yet."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swapped = self.averaging()
        if self._swapped:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(self, "_swapped", False):
            super().on_validation_epoch_end(trainer, pl_module)
            self._swapped = False

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self.averaging():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.averaging():
            super().on_train_end(trainer, pl_module)
