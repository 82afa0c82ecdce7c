"""Stopping a training run on SIGINT or SIGTERM with a checkpoint that resumes exactly.

A run killed by SIGTERM (a batch system's time limit, ``kill``) or stopped with Ctrl-C
must not lose its work nor pretend to have finished (exit status 0). :class:`GracefulStop`
notes the signal and acts at the next safe point:

- **between two training batches of an epoch**: it saves ``last.ckpt`` there (weights,
  optimiser, loop progress, and the epoch's training sums, see
  :func:`slidemap.training.task.mid_epoch_progress`) and stops; ``--resume`` skips the
  batches already trained on (:class:`slidemap.data.datamodule.EpochSampler`), so the run
  ends bit-identical to an uninterrupted one;
- **after the last batch of an epoch or during validation**: the epoch finishes (SIGINT:
  validation and its epoch-end checkpoints; SIGTERM: Lightning stops validation at once,
  so ``last.ckpt`` stays the previous epoch's) and the run stops before the next epoch.

Lightning's own SIGTERM handling (its signal connector, which also stops every DDP
process) stays in place: it calls this handler too. Under DDP no checkpoint is written
mid-epoch (every process would have to take part at the same batch): ``last.ckpt`` is the
last finished epoch's. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from slidemap.errors import Interrupted

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):  # noqa: N818 - a request, raised inside trainer.fit
    """Raised by :class:`GracefulStop` to leave ``trainer.fit`` after its checkpoint."""


class GracefulStop(L.Callback):
    """Stops training at the next safe point after SIGINT or SIGTERM (module docstring).

    Args:
        last: the run's ``last.ckpt``.
    """

    def __init__(self, last: Path) -> None:
        self.last = Path(last)
        self.signum: int | None = None
        self.note = ""

    # -- signals --------------------------------------------------------------------------
    @contextlib.contextmanager
    def catching_signals(self) -> Iterator[GracefulStop]:
        """Route SIGINT and SIGTERM to this callback while the block (``trainer.fit``) runs."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.signal(signum, self._received) for signum in SIGNALS}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _received(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum, "stopped at once by a second signal; "
                              f"{self.last.name} is the last checkpoint saved")
        self.signum = signum
        log.warning("%s received: stopping after the current batch and saving %s (send it again "
                    "to stop at once)", signal.Signals(signum).name, self.last.name)

    def interrupted(self) -> Interrupted:
        """The :class:`Interrupted` to raise once ``trainer.fit`` has returned or failed."""
        signum = self.signum if self.signum is not None else signal.SIGTERM
        note = self.note or (f"{self.last.name} holds the last finished epoch" if self.last.is_file()
                             else "no epoch had finished: nothing to resume, start again")
        return Interrupted(signum, note)

    # -- the safe points ------------------------------------------------------------------
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self.signum is None or trainer.world_size > 1:
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch ends now: validation and its own checkpoints come first
        pl_module.mid_epoch_save = True
        try:  # atomic through the trainer's CheckpointIO plugin
            trainer.save_checkpoint(self.last)
        finally:
            pl_module.mid_epoch_save = False
        self.note = (f"{self.last.name} saved in epoch {trainer.current_epoch + 1} after batch "
                     f"{batch_idx + 1} of {trainer.num_training_batches}")
        raise TrainingStopped(self.note)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.signum is not None:
            self.note = f"{self.last.name} holds epoch {trainer.current_epoch} (finished)"
            raise TrainingStopped(self.note)
