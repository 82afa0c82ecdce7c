"""Signals: SIGINT and SIGTERM during ``train`` save ``last.ckpt`` and exit non-zero with one
line saying how to resume, and the resumed run is bit-identical to an uninterrupted one;
during ``predict``, ``evaluate`` and ``export`` they leave nothing under a final name."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from slidemap.io.outputs import LOCK
from tests.trust.conftest import (
    assert_no_output,
    assert_same_run,
    final_files,
    make_split_folder,
    run_cli,
    run_cli_subprocess,
    start_cli,
    temporaries,
    wait_for,
    write_scene,
)


class Sender(L.Callback):
    """Sends this process ``signum`` when epoch ``epoch`` reaches batch ``batch`` of ``stage``."""

    def __init__(self, stage: str, epoch: int, batch: int, signum: int) -> None:
        self.stage, self.epoch, self.batch, self.signum = stage, epoch, batch, signum
        self.sent = False

    def _at(self, trainer: L.Trainer, stage: str, index: int) -> None:
        if (not self.sent and stage == self.stage and trainer.current_epoch == self.epoch
                and index == self.batch):
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: object,
                             index: int) -> None:
        self._at(trainer, "train", index)

    def on_validation_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: object,
                                  index: int, dataloader_idx: int = 0) -> None:
        self._at(trainer, "val", index)


def assert_interrupted(code: int, err: str, signum: int, *words: str) -> None:
    assert code == 128 + signum, f"exit status {code}:\n{err}"
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("slidemap train: interrupted by " + signal.Signals(signum).name), line
    for word in words:
        assert word in line, line


def test_sigterm_during_training_saves_last_ckpt_and_the_resume_is_exact(
    resume_setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config, data, reference = resume_setup
    run = tmp_path / "run"
    proc = start_cli(["train", "--config", config, "--data", data, "--out", run])
    wait_for(lambda: (run / "last.ckpt").is_file(), proc, timeout=600, what="the first last.ckpt")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert_interrupted(proc.returncode, err.decode(), signal.SIGTERM, "last.ckpt", "--resume")
    resumed = run_cli_subprocess(["train", "--config", config, "--data", data, "--out", run, "--resume"])
    assert resumed.code == 0, resumed.err
    assert_same_run(reference, run)


@pytest.mark.parametrize(("stage", "epoch", "batch", "signum"), [
    # between two batches of the first epoch: last.ckpt saved mid-epoch, before any epoch end
    ("train", 0, 1, signal.SIGINT),
    # during validation: Lightning stops it at once; last.ckpt stays the previous epoch's
    ("val", 1, 0, signal.SIGTERM),
])
def test_a_signal_at_any_point_of_training_resumes_bit_identical(
    resume_setup: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], stage: str, epoch: int, batch: int, signum: int
) -> None:
    import slidemap.training.run as training_run

    config, data, reference = resume_setup
    run = tmp_path / "run"
    argv = ["train", "--config", config, "--data", data, "--out", run]
    build = training_run.build_trainer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference run: the same sums in the same order
    try:
        monkeypatch.setattr(training_run, "build_trainer", lambda cfg, out, callbacks, **kw: build(
            cfg, out, [*callbacks, Sender(stage, epoch, batch, signum)], **kw))
        stopped = run_cli(capsys, argv)
        assert_interrupted(stopped.code, stopped.err, signum, "--resume")
        assert (run / "last.ckpt").is_file() and not temporaries(run)
        if stage == "train":
            assert f"after batch {batch + 1} of" in stopped.err  # the batch under way completes
        monkeypatch.setattr(training_run, "build_trainer", build)
        resumed = run_cli(capsys, [*argv, "--resume"])
    finally:
        torch.set_num_threads(threads)
    assert resumed.code == 0, resumed.err
    assert_same_run(reference, run)


# -------------------------------------------------------------- predict, evaluate, export
def _signal_inside(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> None:
    """Make ``module.name`` send SIGTERM to this process before doing its work."""
    original = getattr(module, name)

    def signalled(*args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, signalled)


def test_sigterm_while_a_scene_is_mapped_leaves_nothing(
    tmp_path: Path, scene_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    import slidemap.inference.mapping as mapping

    _signal_inside(monkeypatch, mapping, "burn_mask")  # probability.tif is done by then
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, "--engine", "torch"])
    assert result.code == 128 + signal.SIGTERM, result.err
    assert result.err.strip().splitlines()[-1] == "slidemap predict: interrupted by SIGTERM"
    assert_no_output(out)


def test_sigterm_while_evaluating_leaves_nothing(
    tmp_path: Path, l4s_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    import slidemap.workflows.figures as figures

    _signal_inside(monkeypatch, figures, "panel_inputs")  # metrics.json and roc.png are written by then
    data = make_split_folder(tmp_path / "data", n=3)
    out = tmp_path / "eval"
    result = run_cli(capsys, ["evaluate", "--checkpoint", l4s_checkpoint, "--data", data, "--out", out])
    assert result.code == 128 + signal.SIGTERM, result.err
    assert_no_output(out)


def test_sigterm_while_exporting_leaves_nothing(
    tmp_path: Path, l4s_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    import slidemap.inference.onnx_export as onnx_export

    _signal_inside(monkeypatch, onnx_export, "export_bytes")
    out = tmp_path / "model" / "m.onnx"
    result = run_cli(capsys, ["export", "--checkpoint", l4s_checkpoint, "--out", out])
    assert result.code == 128 + signal.SIGTERM, result.err
    assert_no_output(out.parent)


def test_an_external_sigterm_during_predict_cleans_up_after_itself(
    tmp_path: Path, scene_checkpoint: Path
) -> None:
    image, dem = write_scene(tmp_path / "scene", 512)
    out = tmp_path / "out"
    proc = start_cli(["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem, "--out", out,
                      "--engine", "torch", "--window", "128"])
    wait_for(lambda: bool(temporaries(out)), proc, timeout=600, what="a temporary output")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    assert final_files(out) == [] and temporaries(out) == [] and not (out / LOCK).exists()
