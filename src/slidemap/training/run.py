"""Train one experiment into a run folder.

A run folder holds:

================  ===========================================================================
file              content
================  ===========================================================================
config.yaml       the resolved experiment config (after ``--data`` and ``--set`` overrides)
best.ckpt         the checkpoint of the best validation epoch (``trainer.monitor``)
last.ckpt         the checkpoint of the last finished epoch (what ``--resume`` continues)
metrics.csv       one row per epoch: train and val loss, precision, recall, F1, IoU, ...
================  ===========================================================================

The curves of ``metrics.csv`` (``curves.png``) are drawn by the workflow that calls this
(:func:`slidemap.workflows.train.train_and_report`): training draws no figures. The
normalisation statistics live in the checkpoints (their one home; no ``stats.json``).

Checkpoints and every other file are written atomically. Distributed training is
Lightning's: ``trainer.strategy: ddp`` with ``trainer.devices`` GPUs per node and
``trainer.num_nodes`` nodes (or CPU processes with ``accelerator: cpu``, over gloo).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from slidemap.config import ExperimentConfig, config_text, resolve_data_path, save_config
from slidemap.config.environment import progress_enabled
from slidemap.data.datamodule import L4SDataModule
from slidemap.data.l4s import read_mask
from slidemap.data.normalization import ChannelStats
from slidemap.errors import ConfigError
from slidemap.features import InputPipeline
from slidemap.io.checkpoint import checkpoint_meta, read_checkpoint
from slidemap.io.outputs import OutputFolder, holding
from slidemap.training.averaging import AveragedWeights
from slidemap.training.callbacks import EpochHistory, read_history
from slidemap.training.checkpoint_io import AtomicCheckpointIO
from slidemap.training.interrupt import GracefulStop, TrainingStopped
from slidemap.training.losses import needs_class_counts
from slidemap.training.resume import resume_setup
from slidemap.training.task import SegmentationTask, mid_epoch_progress

log = logging.getLogger(__name__)

BEST, LAST = "best.ckpt", "last.ckpt"
#: per-epoch history and resolved config of a run folder.
HISTORY_FILE, CONFIG_FILE = "metrics.csv", "config.yaml"
#: the files :func:`train` writes into a run folder.
RUN_OUTPUTS: tuple[str, ...] = (CONFIG_FILE, BEST, LAST, HISTORY_FILE)

#: Warnings a training run raises that are known and harmless here, silenced while
#: :func:`train` fits (and in the processes DDP spawns), and only these:
#: ``(start of the message, category, why it is harmless)``.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    ("Checkpoint directory", UserWarning,
     "the run folder holds config.yaml (and, on resume, the run) before the first checkpoint"),
    ("The 'train_dataloader' does not have many workers", UserWarning,
     "data.num_workers is the config's choice; 0 is intended for small CPU runs"),
    ("The 'val_dataloader' does not have many workers", UserWarning,
     "data.num_workers is the config's choice; 0 is intended for small CPU runs"),
    ("The number of training batches", UserWarning,
     "fewer batches per epoch than trainer.log_every: epoch metrics are logged anyway"),
    ("You're resuming from a checkpoint that ended before the epoch ended", UserWarning,
     "an interrupted run's mid-epoch last.ckpt: EpochSampler skips the batches it trained on"),
    ("`isinstance(treespec", FutureWarning,
     "Lightning 2.6 calls a torch.utils._pytree API that torch 2.13 deprecates; nothing to fix here"),
)


@contextlib.contextmanager
def known_warnings_silenced() -> Iterator[None]:
    """Ignore :data:`KNOWN_WARNINGS` inside the block, in this process and in processes it
    spawns (``PYTHONWARNINGS``, restored after); every other warning still shows."""
    entries = [f"ignore:{prefix}:{category.__name__}" for prefix, category, _ in KNOWN_WARNINGS]
    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join([*entries, *([before] if before else [])])
    try:
        with warnings.catch_warnings():
            for prefix, category, _ in KNOWN_WARNINGS:
                warnings.filterwarnings("ignore", message=re.escape(prefix), category=category)
            yield
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before


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
    """The input pipeline of ``config.data`` (band set and the bands read, features, pixel
    size, elevation)."""
    data = config.data
    return InputPipeline(
        data.band_set, features=data.features, pixel_size_m=data.pixel_size_m,
        elevation=data.elevation, bands=data.bands,
    )


def resolve_data_paths(path: str | list[str] | None) -> Path | list[Path] | None:
    """One data path or a list of them, each found by :func:`~slidemap.config.resolve_data_path`."""
    if path is None:
        return None
    if isinstance(path, list):
        return [resolve_data_path(item) for item in path]
    return resolve_data_path(path)


def build_datamodule(
    config: ExperimentConfig, pipeline: InputPipeline, stats: ChannelStats | None = None,
    resume_at: tuple[int, int] | None = None,
) -> L4SDataModule:
    """The DataModule of ``config.data``; :class:`ConfigError` when no data is named.

    Relative data paths are found by :func:`~slidemap.config.resolve_data_path`.
    ``resume_at``: ``(epoch, patches)`` an interrupted run trained on in the epoch it resumes.
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
        augmentation=data.augmentation, holdout=data.holdout, resume_at=resume_at,
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
    """A progress bar only when asked (``trainer.progress``) and :func:`~slidemap.config.environment.progress_enabled`."""
    return config.trainer.progress and progress_enabled()


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
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
    )


def train(config: ExperimentConfig, out_dir: str | Path, resume: bool = False,
          overwrite: bool = False, source: str | Path | None = None) -> RunResult:
    """Train ``config`` into the run folder ``out_dir``.

    Args:
        config: the resolved experiment.
        out_dir: run folder (created).
        resume: continue from ``out_dir/last.ckpt`` (optimiser, epoch, early stopping and
            history included); the run then reaches ``trainer.max_epochs`` in total. The
            network, its input pipeline and statistics come from the checkpoint
            (:func:`~slidemap.training.resume.resume_setup`).
        overwrite: allow training afresh into a folder that already holds checkpoints.
        source: the config file ``config`` came from, named in errors.

    Raises:
        ConfigError: no data, a run folder with checkpoints and neither resume nor
            overwrite, resume without ``last.ckpt``, or a config that disagrees with
            ``last.ckpt`` on the model or its input.
        CheckpointError: an unreadable ``last.ckpt`` on resume.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    last = out_dir / LAST
    if resume and not last.is_file():
        raise ConfigError(f"cannot resume: no {LAST} in the run folder", out_dir)
    if not resume and not overwrite and last.is_file():
        raise ConfigError(
            f"run folder already holds {LAST}; pass --resume to continue it, --overwrite to "
            "start afresh, or choose another --out",
            out_dir,
        )
    # one run per folder; no input and no file slidemap did not write is replaced
    with holding(out_dir, "train", overwrite=resume or overwrite) as folder:
        if resume:  # a run folder of an older slidemap, or copied here: its last.ckpt says
            checkpoint_meta(read_checkpoint(last), last)  # it is a slidemap run (and safe)
            folder.adopt(RUN_OUTPUTS)
        _fit(config, out_dir, resume, source, folder)
        return finish_run(out_dir, config, time.perf_counter() - started)


def _same_config(config: ExperimentConfig, out_dir: Path) -> bool:
    """Whether the run folder's ``config.yaml`` already holds this resolved config (then it
    is not rewritten: ``--config RUN/config.yaml --out RUN --resume`` reads and keeps it)."""
    path = out_dir / CONFIG_FILE
    try:
        return path.is_file() and path.read_text(encoding="utf-8") == config_text(config)
    except (OSError, UnicodeDecodeError):
        return False


def _fit(config: ExperimentConfig, out_dir: Path, resume: bool, source: str | Path | None,
         folder: OutputFolder) -> None:
    """Statistics, task, callbacks and ``trainer.fit`` of :func:`train`, in its run folder."""
    last = out_dir / LAST
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)

    pipeline = build_pipeline(config)
    stats = None
    resume_at = None
    if resume:  # the checkpoint's model, pipeline and statistics, whatever the config says now
        config, pipeline, stats = resume_setup(config, pipeline, last, source)
        progress = mid_epoch_progress(read_checkpoint(last))
        if progress is not None:  # interrupted mid-epoch: skip the patches it trained on
            resume_at = (int(progress["epoch"]), int(progress["batches_done"]) * config.data.batch_size)
    # ``--config RUN/config.yaml --out RUN --resume``: the run's own config, kept as it is
    keep_config = _same_config(config, out_dir) or (resume and folder.is_input(out_dir / CONFIG_FILE))
    folder.claim(name for name in RUN_OUTPUTS if not (name == CONFIG_FILE and keep_config))
    datamodule = build_datamodule(config, pipeline, stats, resume_at)
    validates = datamodule.has_split("valid")
    if not validates:
        check_without_validation(config)
    datamodule.setup("fit")
    stats = datamodule.stats
    assert stats is not None  # setup computed them
    class_counts = count_classes(datamodule) if needs_class_counts(config.loss) else None
    if rank_zero_only.rank == 0 and not keep_config:
        save_config(config, out_dir / CONFIG_FILE)

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
        # without validation, best.ckpt is the last epoch, like last.ckpt
        ModelCheckpoint(filename=BEST.removesuffix(".ckpt"), monitor=monitor, mode=mode, **common),
        ModelCheckpoint(filename=LAST.removesuffix(".ckpt"), monitor=None, **common),
        EpochHistory(out_dir / HISTORY_FILE),
    ]
    if config.trainer.patience > 0 and monitor is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=config.trainer.patience,
                                       check_on_train_epoch_end=True))
    averaging = config.trainer.averaging
    if averaging.name != "none":
        callbacks.append(AveragedWeights(averaging.name, averaging.decay, averaging.start_epoch))
    stop = GracefulStop(last)  # SIGINT/SIGTERM: save last.ckpt at the next safe point, then stop
    callbacks.append(stop)
    trainer = build_trainer(config, out_dir, callbacks, validates=validates)
    with known_warnings_silenced(), stop.catching_signals():
        try:
            trainer.fit(task, datamodule=datamodule, ckpt_path=last if resume else None,
                        weights_only=True)
        except (TrainingStopped, SIGTERMException):  # Lightning stops on SIGTERM by itself too
            raise stop.interrupted() from None
        except SystemExit:  # Lightning's exit after a KeyboardInterrupt (a second signal)
            if stop.signum is None:
                raise
            raise stop.interrupted() from None


def finish_run(out_dir: Path, config: ExperimentConfig, seconds: float) -> RunResult:
    """Read back the run folder (works whichever process trained)."""
    best = out_dir / BEST
    history = read_history(out_dir / HISTORY_FILE) if (out_dir / HISTORY_FILE).is_file() else []
    meta: dict[str, Any] = {}
    best_epoch = 0
    if best.is_file():
        checkpoint = read_checkpoint(best)
        meta = checkpoint_meta(checkpoint, best)
        best_epoch = int(checkpoint.get("epoch", 0))
    result = RunResult(
        out_dir=out_dir, best_checkpoint=best, last_checkpoint=out_dir / LAST, history=history,
        threshold=float(meta.get("threshold", 0.5)), best_epoch=best_epoch, seconds=seconds,
    )
    log.info("trained %s in %.0f s: best epoch %d, threshold %.3f, in %s", config.name, seconds,
             best_epoch + 1, result.threshold, out_dir)
    return result
