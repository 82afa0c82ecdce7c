"""Training end to end on synthetic data: run folder, learning, checkpoints, resume, DDP."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from slidemap.config import PAPER_FEATURES, experiment_from_dict
from slidemap.data.normalization import ChannelStats
from slidemap.errors import CheckpointError, ConfigError
from slidemap.io.checkpoint import read_checkpoint
from slidemap.models.checkpoint import load_checkpoint
from slidemap.training.callbacks import read_history
from slidemap.training.run import build_datamodule, build_pipeline, train
from slidemap.training.task import SegmentationTask
from slidemap.workflows.evaluate import evaluate_checkpoint


def test_run_folder_holds_every_promised_file(tiny_run) -> None:
    names = {p.name for p in tiny_run.out_dir.iterdir()}
    assert {"best.ckpt", "last.ckpt", "config.yaml", "metrics.csv", "curves.png"} <= names
    rows = read_history(tiny_run.out_dir / "metrics.csv")
    assert [r["epoch"] for r in rows] == list(range(6))
    for key in ("train_loss", "val_loss", "train_precision", "val_recall", "train_f1", "val_iou"):
        assert key in rows[0]
    saved = experiment_from_dict(yaml.safe_load((tiny_run.out_dir / "config.yaml").read_text()))
    assert saved.model.options == {"base_channels": 8, "depth": 2}


def test_tiny_model_clearly_beats_the_all_negative_baseline(tiny_run, synthetic_root: Path) -> None:
    metrics = evaluate_checkpoint(tiny_run.best_checkpoint, synthetic_root, "test").metrics
    # predicting "no landslide" everywhere has F1 = 0
    assert metrics["f1"] > 0.2, metrics
    assert metrics["roc_auc"] > 0.8, metrics


def test_checkpoint_is_plain_data_with_the_slidemap_section(tiny_run) -> None:
    checkpoint = torch.load(tiny_run.last_checkpoint, map_location="cpu", weights_only=True)
    meta = checkpoint["slidemap"]
    assert meta["model"]["name"] == "unet" and meta["in_channels"] == 21
    assert meta["pipeline"]["features"] == list(PAPER_FEATURES)  # the default: Fig. 2 order
    assert 0.0 <= meta["threshold"] <= 1.0 and meta["band_set"] == "l4s14"


def test_checkpoint_round_trip_gives_identical_predictions(synthetic_root: Path, tmp_path: Path,
                                                           tiny_config) -> None:
    config = tiny_config(synthetic_root, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    pipeline = build_pipeline(config)
    datamodule = build_datamodule(config, pipeline)
    datamodule.setup("fit")
    task = SegmentationTask(config, pipeline, datamodule.stats)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(task, datamodule=datamodule)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = load_checkpoint(tmp_path / "model.ckpt")
    batch = next(iter(datamodule.val_dataloader()))["image"]
    trained = task.model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in loaded.model.state_dict().items())
    with torch.no_grad():  # same weights, same memory format (training's): bit-identical logits
        expected = task.model.eval()(batch)
        assert torch.equal(loaded.model.to(memory_format=task.memory_format)(batch), expected)
    assert loaded.threshold == task.threshold
    assert loaded.stats == datamodule.stats and loaded.pipeline == pipeline


def test_resume_continues_from_the_saved_epoch(synthetic_root: Path, tmp_path: Path,
                                               tiny_config) -> None:
    fast = {"limit_train_batches": 2, "limit_val_batches": 1}
    first = train(tiny_config(synthetic_root, max_epochs=2, **fast), tmp_path / "run")
    assert [r["epoch"] for r in first.history] == [0, 1]
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(synthetic_root, max_epochs=3, **fast), tmp_path / "run")
    resumed = train(tiny_config(synthetic_root, max_epochs=3, **fast), tmp_path / "run", resume=True)
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2]
    assert read_checkpoint(resumed.last_checkpoint)["epoch"] == 2
    # the first two rows are the interrupted run's, not recomputed
    assert resumed.history[:2] == first.history


def test_resume_without_last_checkpoint_is_a_config_error(synthetic_root: Path, tmp_path: Path,
                                                          tiny_config) -> None:
    with pytest.raises(ConfigError, match="no last.ckpt"):
        train(tiny_config(synthetic_root), tmp_path / "empty", resume=True)


def _even_validation_split(root: Path, folder: Path) -> Path:
    """A split folder of 8 validation patches (7 of ``ValidData`` and one of ``TestData``):
    two DDP processes each get 4 of them, without the padding a DistributedSampler adds to
    an odd count, so both runs validate on exactly the same pixels."""
    sources = [(root / "ValidData", str(i)) for i in range(1, 8)] + [(root / "TestData", "1")]
    for kind in ("img", "mask"):
        (folder / kind).mkdir(parents=True)
    for number, (split, source_id) in enumerate(sources, start=1):
        (folder / "img" / f"image_{number}.h5").symlink_to(split / "img" / f"image_{source_id}.h5")
        (folder / "mask" / f"mask_{number}.h5").symlink_to(split / "mask" / f"mask_{source_id}.h5")
    return folder


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_validates_like_one_process(
        synthetic_root: Path, tmp_path: Path, tiny_config, monkeypatch) -> None:
    """Each DDP process validates half the patches; the epoch's histograms and loss are
    summed over processes (``EpochAccumulator.reduce``), so the logged validation metrics
    equal those of one process validating the same weights on all the patches."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # same intra-op threads as the reference below
    val_path = _even_validation_split(synthetic_root, tmp_path / "valid8")
    config = tiny_config(synthetic_root, max_epochs=1, limit_train_batches=2,
                         strategy="ddp_spawn", devices=2)
    config.data.val_path = str(val_path)
    result = train(config, tmp_path / "ddp")
    checkpoint = read_checkpoint(result.last_checkpoint)
    (history_state,) = [v for k, v in checkpoint["callbacks"].items() if "EpochHistory" in k]
    (ddp_record,) = history_state["rows"]  # full precision, as rank 0 logged it
    assert [r["epoch"] for r in result.history] == [0]

    # the reference: one process, the same weights (validation ran after the epoch's last
    # step, the checkpoint was saved after it) on all eight patches
    loaded = load_checkpoint(result.last_checkpoint)
    single = tiny_config(synthetic_root, max_epochs=1)
    single.data.val_path = str(val_path)
    datamodule = build_datamodule(single, loaded.pipeline, loaded.stats)
    task = SegmentationTask(single, loaded.pipeline, loaded.stats)
    task.model.load_state_dict(loaded.model.state_dict())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                  enable_model_summary=False).validate(task, datamodule=datamodule, verbose=False)
    finally:
        torch.set_num_threads(threads)
    reference = task.last_epoch_record
    curves = task._epochs["val"].curves
    assert curves.n_pixels == 8 * 128 * 128  # all eight patches, each once

    histogram_metrics = ("val_precision", "val_recall", "val_f1", "val_iou", "val_accuracy",
                         "val_mcc", "val_best_f1", "val_pr_auc", "threshold")
    for key in histogram_metrics:  # functions of the summed integer histograms: exact
        assert ddp_record[key] == reference[key], key
    assert ddp_record["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-5)
    assert 0.0 < reference["val_f1"] < 1.0 and 0.0 < reference["threshold"] < 1.0
    assert result.threshold == reference["threshold"]  # stored in the checkpoint
    assert math.isclose(reference["val_pr_auc"], curves.pr_auc())


class _Evil:
    def __reduce__(self):  # pragma: no cover - never executed by a safe loader
        return (print, ("pwned",))


def test_unsafe_missing_section_and_corrupted_checkpoints_are_refused(tiny_run, tmp_path: Path) -> None:
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "slidemap": _Evil()}, evil)
    with pytest.raises(CheckpointError, match="not a safe"):
        load_checkpoint(evil)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, plain)
    with pytest.raises(CheckpointError, match="no 'slidemap' section"):
        load_checkpoint(plain)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(tiny_run.best_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=str(truncated)):
        load_checkpoint(truncated)
    text = tmp_path / "text.ckpt"
    text.write_bytes(pickle.dumps("hello"))
    with pytest.raises(CheckpointError, match=str(text)):
        load_checkpoint(text)


def test_tensorboard_option_writes_the_epoch_metrics_as_events(synthetic_root: Path, tmp_path: Path,
                                                               tiny_config) -> None:
    from tensorboardX.proto.event_pb2 import Event  # the writer's own record format

    config = tiny_config(synthetic_root, max_epochs=2, limit_train_batches=2, limit_val_batches=1,
                         tensorboard=True)
    train(config, tmp_path / "run")
    files = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    tags: dict[str, list[float]] = {}
    data = files[0].read_bytes()
    offset = 0
    while offset < len(data):  # TFRecord framing: length (8), crc (4), payload, crc (4)
        length = int.from_bytes(data[offset:offset + 8], "little")
        event = Event.FromString(data[offset + 12:offset + 12 + length])
        offset += 16 + length
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append(value.simple_value)
    assert len(tags["val_f1"]) == 2 and len(tags["val_best_f1"]) == 2  # one per epoch
    history = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, last = history[0].split(","), history[-1].split(",")
    assert abs(tags["val_loss"][-1] - float(last[header.index("val_loss")])) < 1e-5


def test_tensorboard_without_a_writer_is_a_config_error(synthetic_root: Path, tmp_path: Path,
                                                        tiny_config, monkeypatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None
                        if name in ("tensorboard", "tensorboardX") else find_spec(name, *args))
    config = tiny_config(synthetic_root, max_epochs=1, tensorboard=True)
    with pytest.raises(ConfigError, match=r"slidemap\[tensorboard\]"):
        train(config, tmp_path / "run")


@pytest.mark.parametrize("channels_last", [True, False])
def test_training_memory_format_follows_the_config(synthetic_root: Path, tiny_config,
                                                   channels_last: bool) -> None:
    config = tiny_config(synthetic_root, channels_last=channels_last)
    pipeline = build_pipeline(config)
    task = SegmentationTask(config, pipeline, ChannelStats(pipeline.channel_names, [0.0] * pipeline.in_channels,
                                                           [1.0] * pipeline.in_channels))
    weights = [m.weight for m in task.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    expected = torch.channels_last if channels_last else torch.contiguous_format
    assert weights and all(w.is_contiguous(memory_format=expected) for w in weights)
    assert all(not w.is_contiguous() for w in weights) == channels_last
