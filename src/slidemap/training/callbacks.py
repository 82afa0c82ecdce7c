"""Callbacks of a slidemap run: the per-epoch history (``metrics.csv``).

Checkpoints are written by Lightning's own ``ModelCheckpoint``; they appear atomically
through :class:`slidemap.training.checkpoint_io.AtomicCheckpointIO`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L

from slidemap.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

#: leading columns of ``metrics.csv``; the other keys follow in sorted order.
LEADING_COLUMNS: tuple[str, ...] = (
    "epoch", "train_loss", "val_loss", "train_precision", "val_precision", "train_recall",
    "val_recall", "train_f1", "val_f1", "train_iou", "val_iou",
)


def history_csv(rows: Sequence[dict[str, float]]) -> str:
    """CSV text of per-epoch records: :data:`LEADING_COLUMNS` first, then the rest sorted."""
    keys = {key for row in rows for key in row}
    columns = [c for c in LEADING_COLUMNS if c in keys] + sorted(keys - set(LEADING_COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: int(v) if k == "epoch" else f"{v:.6g}" for k, v in row.items()})
    return buffer.getvalue()


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as floats (``epoch`` as int); empty cells are left out."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(fh)
        ]


class EpochHistory(L.Callback):
    """Writes ``metrics.csv`` (one row per epoch, train and val metrics) and logs a line.

    The rows are also the callback's checkpoint state, so a resumed run continues the same
    file with every epoch counted once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run without validation closes its epoch here, before the checkpoint callbacks
        # (Lightning runs them last) save this callback's rows.
        if not getattr(pl_module, "validates", True):
            pl_module.close_epoch()
            self.on_validation_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = getattr(pl_module, "last_epoch_record", None)
        if trainer.sanity_checking or record is None:
            return
        pl_module.last_epoch_record = None
        self.rows = [row for row in self.rows if row["epoch"] != record["epoch"]] + [dict(record)]
        if trainer.is_global_zero:
            write_text_atomic(self.path, history_csv(self.rows))
            shown = ("train_loss", "val_loss", "val_f1", "val_best_f1", "threshold")
            log.info(
                "epoch %d/%d  %s", int(record["epoch"]) + 1, trainer.max_epochs,
                "  ".join(f"{k} {record[k]:.4f}" for k in shown if k in record),
            )

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state_dict.get("rows", [])]

