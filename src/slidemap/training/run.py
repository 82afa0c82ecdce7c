"""Train one experiment into a run folder.

A run folder holds:

================  ===========================================================================
file              content
================  ===========================================================================
config.yaml       the resolved experiment config (after ``--data`` and ``--set`` overrides)
stats.json        normalisation statistics of the training split (per input channel)
best.ckpt         the checkpoint of the best validation epoch (``trainer.monitor``)
last.ckpt         the checkpoint of the last finished epoch (what ``--resume`` continues)
metrics.csv       one row per epoch: train and val loss, precision, recall, F1, IoU, ...
curves.png        those curves (the paper's Fig. 4, 7, 8 for one model)
================  ===========================================================================

Checkpoints and every other file are written atomically. Distributed training is
Lightning's: ``trainer.strategy: ddp`` with ``trainer.devices`` GPUs per node and
``trainer.num_nodes`` nodes (or CPU processes with ``accelerator: cpu``, over gloo).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback, EarlyStopping, RichProgressBar

from slidemap.config import ExperimentConfig, resolve_data_path, save_config
from slidemap.data.datamodule import L4SDataModule
from slidemap.data.l4s import read_mask
from slidemap.data.normalization import ChannelStats
from slidemap.errors import ConfigError
from slidemap.features import InputPipeline
from slidemap.io.atomic import clean_stale_temporaries
from slidemap.io.checkpoint import checkpoint_meta, read_checkpoint
from slidemap.training.averaging import AveragedWeights
from slidemap.training.callbacks import AtomicModelCheckpoint, EpochHistory, read_history
from slidemap.training.losses import needs_class_counts
from slidemap.training.task import SegmentationTask

log = logging.getLogger(__name__)

BEST, LAST = "best.ckpt", "last.ckpt"


@dataclass
class RunResult:
    """What :func:`train` produced.

    Attributes:
        out_dir: the run folder.
        best_checkpoint, last_checkpoint: paths in it.
        history: ``metrics.csv`` rows (one dict per epoch).
        threshold: the best checkpoint's threshold (validation best F1, or the fixed one).
        best_epoch: epoch (0-based) of ``best.ckpt``.
        seconds: wall time of this call.
    """

    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, float]] = field(default_factory=list)
    threshold: float = 0.5
    best_epoch: int = 0
    seconds: float = 0.0


def build_pipeline(config: ExperimentConfig) -> InputPipeline:
    """The input pipeline of ``config.data`` (band set, features, pixel size, elevation)."""
    data = config.data
    return InputPipeline(
        data.band_set, features=data.features, pixel_size_m=data.pixel_size_m,
        elevation=data.elevation,
    )


def resolve_data_paths(path: str | list[str] | None) -> Path | list[Path] | None:
    """One data path or a list of them, each found by :func:`~slidemap.config.resolve_data_path`."""
    if path is None:
        return None
    if isinstance(path, list):
        return [resolve_data_path(item) for item in path]
    return resolve_data_path(path)


def build_datamodule(
    config: ExperimentConfig, pipeline: InputPipeline, stats: ChannelStats | None = None
) -> L4SDataModule:
    """The DataModule of ``config.data``; :class:`ConfigError` when no data is named.

    Relative data paths are found by :func:`~slidemap.config.resolve_data_path`.
    """
    data = config.data
    if data.root is None and data.train_path is None:
        raise ConfigError("no training data: give --data DIR (or data.root / data.train_path)")
    root, train_path, val_path, test_path = (
        resolve_data_paths(path)
        for path in (data.root, data.train_path, data.val_path, data.test_path)
    )
    return L4SDataModule(
        root, pipeline, batch_size=data.batch_size, num_workers=data.num_workers,
        augment=data.augment, stats=stats, cache=data.cache, train_path=train_path,
        val_path=val_path, test_path=test_path, seed=config.trainer.seed,
        augmentation=data.augmentation, holdout=data.holdout,
    )


def check_without_validation(config: ExperimentConfig) -> None:
    """A run without validation data chooses nothing on it: a fixed threshold, no early
    stopping; ``best.ckpt`` is then the last epoch's. :class:`ConfigError` otherwise."""
    if not isinstance(config.threshold, float):
        raise ConfigError(
            "no validation data (data.val_path is null and data.holdout.fraction is 0), so "
            "'threshold: best_f1' has nothing to choose on; fix it (e.g. threshold: 0.5), give "
            "data.val_path, or hold out blocks of the training areas (data.holdout.fraction)")
    if config.trainer.patience > 0:
        raise ConfigError(
            "no validation data (data.val_path is null and data.holdout.fraction is 0), so "
            "early stopping has nothing to watch; set trainer.patience: 0 or give validation data")


def count_classes(datamodule: L4SDataModule) -> tuple[int, int]:
    """``(n_positive, n_negative)`` labelled pixels of the training split."""
    positive = negative = 0
    for ref in datamodule.refs("train"):
        mask = read_mask(ref.mask)
        positive += int((mask == 1).sum())
        negative += int((mask == 0).sum())
    return positive, negative


def show_progress(config: ExperimentConfig) -> bool:
    """A progress bar only on a terminal, when asked, and unless ``SLIDEMAP_NO_PROGRESS=1``."""
    return (config.trainer.progress and sys.stderr.isatty()
            and os.environ.get("SLIDEMAP_NO_PROGRESS", "0") in ("", "0"))


def tensorboard_logger(out_dir: Path) -> Any:
    """Lightning's TensorBoard logger writing event files to ``out_dir/tensorboard/``.

    Raises:
        ConfigError: neither ``tensorboard`` nor ``tensorboardX`` is installed.
    """
    import importlib.util

    from lightning.pytorch.loggers import TensorBoardLogger

    if not any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX")):
        raise ConfigError(
            "trainer.tensorboard is true but no TensorBoard writer is installed; "
            "pip install 'slidemap[tensorboard]' (or set trainer.tensorboard=false)"
        )
    return TensorBoardLogger(save_dir=out_dir, name="tensorboard", version="",
                             default_hp_metric=False)


def build_trainer(config: ExperimentConfig, out_dir: Path, callbacks: list[Callback],
                  validates: bool = True) -> L.Trainer:
    """The Lightning Trainer of ``config.trainer`` writing into ``out_dir`` (no validation
    loop when ``validates`` is false)."""
    tc = config.trainer
    progress = show_progress(config)
    if progress:
        callbacks = [*callbacks, RichProgressBar(leave=False)]
    return L.Trainer(
        default_root_dir=out_dir,
        max_epochs=tc.max_epochs,
        accelerator=tc.accelerator,
        devices=tc.devices,
        strategy=tc.strategy,
        num_nodes=tc.num_nodes,
        precision=tc.precision,
        deterministic=tc.deterministic,
        limit_train_batches=tc.limit_train_batches,
        limit_val_batches=tc.limit_val_batches if validates else 0,
        log_every_n_steps=tc.log_every,
        num_sanity_val_steps=0,
        logger=tensorboard_logger(out_dir) if tc.tensorboard else False,
        callbacks=callbacks,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )


def train(config: ExperimentConfig, out_dir: str | Path, resume: bool = False,
          overwrite: bool = False) -> RunResult:
    """Train ``config`` into the run folder ``out_dir``.

    Args:
        config: the resolved experiment.
        out_dir: run folder (created).
        resume: continue from ``out_dir/last.ckpt`` (optimiser, epoch, early stopping and
            history included); the run then reaches ``trainer.max_epochs`` in total.
        overwrite: allow training afresh into a folder that already holds checkpoints.

    Raises:
        ConfigError: no data, a run folder with checkpoints and neither resume nor
            overwrite, or resume without ``last.ckpt``.
        CheckpointError: an unreadable ``last.ckpt`` on resume.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    last = out_dir / LAST
    if resume and not last.is_file():
        raise ConfigError(f"cannot resume: no {LAST} in the run folder", out_dir)
    if not resume and not overwrite and last.is_file():
        raise ConfigError(
            f"run folder already holds {LAST}; pass --resume to continue it or choose another --out",
            out_dir,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)

    pipeline = build_pipeline(config)
    stats = None
    if resume:  # same statistics as the interrupted run, whatever the data folder holds now
        stats = ChannelStats.from_dict(checkpoint_meta(read_checkpoint(last), last)["normalization"])
    datamodule = build_datamodule(config, pipeline, stats)
    validates = datamodule.has_split("valid")
    if not validates:
        check_without_validation(config)
    datamodule.setup("fit")
    stats = datamodule.stats
    assert stats is not None  # setup computed them
    class_counts = count_classes(datamodule) if needs_class_counts(config.loss) else None
    if rank_zero_only.rank == 0:
        save_config(config, out_dir / "config.yaml")
        stats.save(out_dir / "stats.json")

    task = SegmentationTask(config, pipeline, stats, class_counts=class_counts, validates=validates)
    monitor = config.trainer.monitor if validates else None
    mode = "min" if monitor == "val_loss" else "max"
    # Two checkpoint callbacks: Lightning 2.6 writes ``save_last`` only in epochs that also
    # improved the monitored metric, so "last" is a checkpoint of its own, without a monitor.
    # Both save at the epoch boundary (after validation), so a resume starts the next epoch
    # instead of repeating the one whose validation triggered the save.
    common = {"dirpath": out_dir, "save_top_k": 1, "auto_insert_metric_name": False,
              "enable_version_counter": False, "save_on_train_epoch_end": True}
    callbacks: list[Callback] = [
        AtomicModelCheckpoint(filename=BEST.removesuffix(".ckpt"), monitor=monitor, mode=mode,
                              **common),  # without validation: the last epoch, like last.ckpt
        AtomicModelCheckpoint(filename=LAST.removesuffix(".ckpt"), monitor=None, **common),
        EpochHistory(out_dir / "metrics.csv"),
    ]
    if config.trainer.patience > 0 and monitor is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=config.trainer.patience,
                                       check_on_train_epoch_end=True))
    averaging = config.trainer.averaging
    if averaging.name != "none":
        callbacks.append(AveragedWeights(averaging.name, averaging.decay, averaging.start_epoch))
    trainer = build_trainer(config, out_dir, callbacks, validates=validates)
    with warnings.catch_warnings():
        # a CPU run with few batches is intended here, not a performance problem
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        trainer.fit(task, datamodule=datamodule, ckpt_path=last if resume else None,
                    weights_only=True)
    return finish_run(out_dir, config, time.perf_counter() - started)


def finish_run(out_dir: Path, config: ExperimentConfig, seconds: float) -> RunResult:
    """Read back the run folder (works whichever process trained) and draw the curves."""
    best = out_dir / BEST
    history = read_history(out_dir / "metrics.csv") if (out_dir / "metrics.csv").is_file() else []
    meta: dict[str, Any] = {}
    best_epoch = 0
    if best.is_file():
        checkpoint = read_checkpoint(best)
        meta = checkpoint_meta(checkpoint, best)
        best_epoch = int(checkpoint.get("epoch", 0))
    if rank_zero_only.rank == 0 and history:
        from slidemap.plots.curves import plot_training_curves
        from slidemap.plots.io import save_figure

        save_figure(plot_training_curves({config.name: history}), out_dir / "curves.png")
    result = RunResult(
        out_dir=out_dir, best_checkpoint=best, last_checkpoint=out_dir / LAST, history=history,
        threshold=float(meta.get("threshold", 0.5)), best_epoch=best_epoch, seconds=seconds,
    )
    log.info("trained %s in %.0f s: best epoch %d, threshold %.3f, in %s", config.name, seconds,
             best_epoch + 1, result.threshold, out_dir)
    return result
