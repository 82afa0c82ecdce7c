"""The one LightningModule of slidemap: a segmentation network trained by names.

:class:`SegmentationTask` is configured by an :class:`~slidemap.config.ExperimentConfig`
(model name and options, loss terms, optimiser, schedule, threshold), like TorchGeo's
trainers, so the CLI and configs stay thin.

Per epoch it accumulates, for the training and the validation split, the mean loss and the
histograms of predicted probabilities of landslide and background pixels
(:class:`~slidemap.evaluation.curves.BinnedCurves`). From them, at the end of each
validation epoch, come the confusion matrix at 0.5 and its metrics (``train_*`` and
``val_*``: loss, precision, recall, f1, iou, ...), the validation PR-AUC, and the
threshold that maximises F1 on validation (``val_best_f1`` at ``threshold``). Histograms
are summed over DDP processes, so every process logs the same numbers.

Training metrics are computed at the validation epoch end, because Lightning runs the
validation of an epoch after its last training batch and before ``on_train_epoch_end``:
that is the one moment both splits of an epoch are complete.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import nn

from slidemap.config import ExperimentConfig
from slidemap.data.normalization import ChannelStats
from slidemap.evaluation.curves import BinnedCurves
from slidemap.evaluation.metrics import metrics_from_counts
from slidemap.features import InputPipeline
from slidemap.io.checkpoint import FORMAT_VERSION, SECTION
from slidemap.models import build_model
from slidemap.training.losses import build_loss

log = logging.getLogger(__name__)

#: threshold of the per-epoch curves (``train_f1``, ``val_f1``...): the natural one of a
#: probability, so curves of epochs and models are comparable.
EPOCH_THRESHOLD = 0.5
#: metrics logged per epoch and split (keys of :func:`metrics_from_counts`).
EPOCH_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "iou", "accuracy", "mcc")


class EpochAccumulator:
    """Loss sum, batch count and probability histograms of one split over one epoch."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.batches = torch.zeros((), dtype=torch.int64)
        self.curves = BinnedCurves()

    def update(self, loss: torch.Tensor, prob: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: ``loss`` scalar, ``prob`` (B, H, W) in [0, 1], ``target`` (B, H, W)."""
        self.loss_sum = self.loss_sum.to(loss.device) + loss.detach().double()
        self.batches = self.batches.to(loss.device) + 1
        self.curves.update(prob.detach(), target)

    @property
    def empty(self) -> bool:
        return int(self.batches) == 0

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (a ``weights_only`` checkpoint can hold them)."""
        return {"loss_sum": self.loss_sum.detach().cpu().clone(),
                "batches": self.batches.detach().cpu().clone(), "curves": self.curves.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_sum = torch.as_tensor(state["loss_sum"], dtype=torch.float64)
        self.batches = torch.as_tensor(state["batches"], dtype=torch.int64)
        self.curves.load_state_dict(state["curves"])

    def reduce(self, strategy: Any) -> None:
        """Sum over DDP processes (a no-op on one process)."""
        self.loss_sum = strategy.reduce(self.loss_sum, reduce_op="sum")
        self.batches = strategy.reduce(self.batches, reduce_op="sum")
        state = {k: strategy.reduce(v, reduce_op="sum") for k, v in self.curves.state_dict().items()}
        self.curves.load_state_dict({k: v.cpu() for k, v in state.items()})

    def metrics(self, prefix: str) -> dict[str, float]:
        """``{prefix_loss, prefix_precision, ...}`` at :data:`EPOCH_THRESHOLD`."""
        scores = metrics_from_counts(self.curves.counts_at(EPOCH_THRESHOLD), EPOCH_THRESHOLD)
        out = {f"{prefix}_loss": float(self.loss_sum) / max(int(self.batches), 1)}
        out.update({f"{prefix}_{key}": float(scores[key]) for key in EPOCH_METRICS})
        return out


class SegmentationTask(L.LightningModule):
    """Trains ``build_model(config.model.name, pipeline.in_channels, **config.model.options)``.

    Args:
        config: the resolved experiment.
        pipeline: the input pipeline (stored in checkpoints).
        stats: normalisation statistics of the training split (stored in checkpoints).
        class_counts: ``(n_positive, n_negative)`` training pixels, for ``weighted_bce: auto``.
        validates: whether the run has a validation split. Without one (training on every
            labelled area, a fixed threshold, the last checkpoint) the epoch's record holds
            the training metrics alone, made by :meth:`close_epoch` at the epoch's end.

    Batches are ``{"image": (B, C, H, W) float32 normalised, "mask": (B, H, W) int64}``.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        pipeline: InputPipeline,
        stats: ChannelStats,
        class_counts: tuple[int, int] | None = None,
        validates: bool = True,
    ) -> None:
        super().__init__()
        self.validates = validates
        self.config = config
        self.pipeline = pipeline
        self.stats = stats
        self.model: nn.Module = build_model(
            config.model.name, pipeline.in_channels, **config.model.options
        )
        #: weights and batches in ``channels_last`` (``trainer.channels_last``): oneDNN's
        #: faster layout for convolutions on a CPU (docs/speed.md).
        self.memory_format = (torch.channels_last if config.trainer.channels_last
                              else torch.contiguous_format)
        self.model.to(memory_format=self.memory_format)
        self.loss_fn = build_loss(config.loss, class_counts=class_counts)
        fixed = config.threshold if isinstance(config.threshold, float) else None
        self.threshold: float = EPOCH_THRESHOLD if fixed is None else fixed
        self._fixed_threshold = fixed
        self._epochs = {"train": EpochAccumulator(), "val": EpochAccumulator()}
        self.last_epoch_record: dict[str, float] | None = None
        #: set while a checkpoint is saved in the middle of an epoch (training interrupted):
        #: it then records the epoch's training sums, for an exact resume.
        self.mid_epoch_save = False

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1, H, W)`` of normalised input ``(B, C, H, W)``."""
        return self.model(image)

    # ------------------------------------------------------------------------- steps
    def _step(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        logits = self.model(batch["image"].contiguous(memory_format=self.memory_format))
        target = batch["mask"]
        loss = self.loss_fn(logits, target)
        prob = torch.sigmoid(logits.detach().float()).squeeze(1)
        self._epochs[split].update(loss, prob, target)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False,
                 batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_train_epoch_start(self) -> None:
        self._epochs["train"].reset()

    def on_validation_epoch_start(self) -> None:
        self._epochs["val"].reset()

    def close_epoch(self) -> None:
        """The epoch's record from the training split alone (a run without validation);
        called at the training epoch's end, before its checkpoints are written."""
        record: dict[str, float] = {"epoch": float(self.current_epoch)}
        accumulator = self._epochs["train"]
        accumulator.reduce(self.trainer.strategy)
        if not accumulator.empty:
            record.update(accumulator.metrics("train"))
        record["threshold"] = float(self.threshold)
        if self.trainer.optimizers:
            record["lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.last_epoch_record = record
        for key, value in record.items():
            if key != "epoch":
                self.log(key, value, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        record: dict[str, float] = {"epoch": float(self.current_epoch)}
        for split, accumulator in self._epochs.items():
            accumulator.reduce(self.trainer.strategy)
            if not accumulator.empty:
                record.update(accumulator.metrics(split))
        val_curves = self._epochs["val"].curves
        best = val_curves.best_f1_threshold()
        best_scores = metrics_from_counts(val_curves.counts_at(best), best)
        if self._fixed_threshold is None:
            self.threshold = best
        pr_auc = val_curves.pr_auc()
        record.update({
            "val_best_f1": float(best_scores["f1"]),
            "val_pr_auc": 0.0 if pr_auc != pr_auc else pr_auc,  # NaN without landslides
            "threshold": float(self.threshold),
        })
        if self.trainer.optimizers:  # absent in a stand-alone trainer.validate()
            record["lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.last_epoch_record = record
        record.setdefault("val_f1", 0.0)
        for key, value in record.items():
            if key != "epoch":  # values are already reduced over processes
                self.log(key, value, sync_dist=False, prog_bar=key == "val_f1")

    # --------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        optim = self.config.optim
        params = self.model.parameters()
        if optim.name == "adam":
            optimizer: torch.optim.Optimizer = torch.optim.Adam(
                params, lr=optim.lr, weight_decay=optim.weight_decay)
        elif optim.name == "adamw":
            optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                params, lr=optim.lr, momentum=0.9, weight_decay=optim.weight_decay)
        schedule = self.config.schedule
        if schedule.name == "cosine":
            scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=self.config.trainer.max_epochs, eta_min=schedule.min_lr)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}
        if schedule.name == "plateau":
            monitor = self.config.trainer.monitor
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min" if monitor == "val_loss" else "max",
                factor=schedule.factor, patience=schedule.patience, min_lr=schedule.min_lr)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}
        return optimizer

    # -------------------------------------------------------------------- checkpoint
    def slidemap_section(self) -> dict[str, Any]:
        """The checkpoint's plain-data ``"slidemap"`` section (see :mod:`slidemap.io.checkpoint`)."""
        return {
            "format_version": FORMAT_VERSION,
            "model": {"name": self.config.model.name,
                      "options": dict(getattr(self.model, "model_options", self.config.model.options))},
            "in_channels": self.pipeline.in_channels,
            "pipeline": self.pipeline.to_dict(),
            "normalization": self.stats.to_dict(),
            "threshold": float(self.threshold),
            "config": self.config.to_dict(),
            "band_set": self.pipeline.band_set.name,
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SECTION] = self.slidemap_section()
        train = self._epochs["train"]
        checkpoint[PROGRESS] = {"epoch": int(self.current_epoch), "mid_epoch": bool(self.mid_epoch_save),
                                "batches_done": int(train.batches), "train": train.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        section = checkpoint.get(SECTION) or {}
        if self._fixed_threshold is None and "threshold" in section:
            self.threshold = float(section["threshold"])
        progress = mid_epoch_progress(checkpoint)
        if progress is not None:  # Lightning resumes mid-epoch without on_train_epoch_start
            self._epochs["train"].load_state_dict(progress["train"])


#: checkpoint key of the training progress inside an epoch (see :func:`mid_epoch_progress`).
PROGRESS = "slidemap_progress"


def mid_epoch_progress(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """``{"epoch", "batches_done", "train"}`` of a checkpoint saved in the middle of an
    epoch (an interrupted run), else ``None`` (an epoch-end checkpoint)."""
    progress = checkpoint.get(PROGRESS)
    if isinstance(progress, dict) and progress.get("mid_epoch") is True:
        return progress
    return None
