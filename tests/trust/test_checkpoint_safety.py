"""Checkpoints are loaded without running pickled code, and bad ones are refused clearly.

A malicious ``.ckpt`` (its unpickling would run ``os.system``) must be refused by
:func:`slidemap.io.checkpoint.load_checkpoint` and by every command taking a checkpoint,
with one ``CheckpointError`` line naming the file and without the payload ever running.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from slidemap.errors import CheckpointError
from slidemap.models.checkpoint import load_checkpoint
from tests.trust.conftest import (
    assert_no_output,
    assert_one_line_error,
    make_split_folder,
    run_cli,
    write_checkpoint,
)


class Payload:
    """Unpickling this object runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _torch_payload(path: Path, marker: Path) -> Path:
    """A zip-format torch file whose ``slidemap`` section is the payload."""
    torch.save({"state_dict": {}, "slidemap": Payload(marker)}, path)
    return path


def _pickle_payload(path: Path, marker: Path) -> Path:
    """A bare (legacy, non-zip) pickle of the payload named ``.ckpt``."""
    path.write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=2))
    return path


MALICIOUS: dict[str, Callable[[Path, Path], Path]] = {
    "torch zip": _torch_payload,
    "bare pickle": _pickle_payload,
}


def test_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    """The planted file is dangerous: an unrestricted load creates the marker."""
    marker = tmp_path / "marker"
    path = _torch_payload(tmp_path / "evil.ckpt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("kind", MALICIOUS)
def test_load_checkpoint_refuses_malicious_pickle(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = MALICIOUS[kind](tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match="not a safe slidemap checkpoint") as info:
        load_checkpoint(path)
    assert info.value.path == path
    assert not marker.exists(), "the pickled payload ran"


def _command(name: str, ckpt: Path, tmp_path: Path) -> tuple[list[str | Path], Path]:
    """argv of command ``name`` using checkpoint ``ckpt``, and its output folder."""
    data = make_split_folder(tmp_path / "data", n=2)
    out = tmp_path / "out"
    if name == "predict":
        return ["predict", "--checkpoint", ckpt, data, "--out", out], out
    if name == "evaluate":
        return ["evaluate", "--checkpoint", ckpt, "--data", data, "--out", out], out
    if name == "export":
        return ["export", "--checkpoint", ckpt, "--out", out / "model.onnx"], out
    raise AssertionError(name)


CHECKPOINT_COMMANDS = ("predict", "evaluate", "export")


@pytest.mark.parametrize("kind", MALICIOUS)
@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_commands_refuse_malicious_checkpoint(command: str, kind: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    ckpt = MALICIOUS[kind](tmp_path / "evil.ckpt", marker)
    argv, out = _command(command, ckpt, tmp_path)
    result = run_cli(capsys, argv)
    assert_one_line_error(result, ckpt, "not a safe slidemap checkpoint")
    assert not marker.exists(), "the pickled payload ran"
    assert_no_output(out)


def test_train_resume_refuses_malicious_last_checkpoint(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    ckpt = _torch_payload(run / "last.ckpt", marker)
    config = tmp_path / "cfg.yaml"
    config.write_text("name: t\nmodel: {name: unet, options: {base_channels: 4, depth: 2}}\n"
                      "data: {features: []}\ntrainer: {max_epochs: 1, accelerator: cpu}\n")
    data = make_split_folder(tmp_path / "data", n=2)
    result = run_cli(capsys, ["train", "--config", config, "--data", data, "--out", run, "--resume"])
    assert_one_line_error(result, ckpt, "not a safe slidemap checkpoint")
    assert not marker.exists(), "the pickled payload ran"
    assert sorted(p.name for p in run.iterdir()) == ["last.ckpt"], "resume wrote into the run folder"


# ------------------------------------------------------------------- other bad checkpoints
@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], Path]
    words: tuple[str, ...]


def _bytes(content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "model.ckpt"
        path.write_bytes(content)
        return path

    return make


def _zip_not_torch(folder: Path) -> Path:
    path = folder / "model.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    return path


def _torch_object(obj: object) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "model.ckpt"
        torch.save(obj, path)
        return path

    return make


def _truncated(folder: Path) -> Path:
    path = write_checkpoint(folder / "model.ckpt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _edited(**section: object) -> Callable[[Path], Path]:
    return lambda folder: write_checkpoint(folder / "model.ckpt", **section)


def _without_section_key(key: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = write_checkpoint(folder / "model.ckpt")
        checkpoint = torch.load(path, weights_only=True)
        del checkpoint["slidemap"][key]
        torch.save(checkpoint, path)
        return path

    return make


def _directory(folder: Path) -> Path:
    path = folder / "model.ckpt"
    path.mkdir()
    return path


BAD_CHECKPOINTS: list[Case] = [
    Case("missing file", lambda f: f / "model.ckpt", ("does not exist",)),
    Case("a folder", _directory, ("is a folder",)),
    Case("zero bytes", _bytes(b""), ("empty",)),
    Case("random bytes", _bytes(np.random.default_rng(3).bytes(2048)), ("checkpoint",)),
    Case("text", _bytes(b"epoch: 3\nweights: none\n"), ("checkpoint",)),
    Case("a zip that is not a torch file", _zip_not_torch, ("not a readable checkpoint",)),
    Case("truncated", _truncated, ("not a readable checkpoint",)),
    Case("a tensor, not a dict", _torch_object(torch.zeros(3)), ("not a checkpoint",)),
    Case("plain state dict, no slidemap section", _torch_object({"state_dict": {"w": torch.zeros(1)}}),
         ("no 'slidemap' section",)),
    Case("section lacks pipeline", _without_section_key("pipeline"), ("lacks pipeline",)),
    Case("newer format", _edited(format_version=99), ("newer",)),
    Case("unknown model name", _edited(model={"name": "transformer", "options": {}}), ("cannot rebuild",)),
    Case("weights of another width", _edited(model={"name": "unet", "options": {"base_channels": 8, "depth": 2}}),
         ("weights do not fit",)),
    Case("pipeline and model disagree", _edited(in_channels=5), ("channels",)),
]


@pytest.mark.parametrize("case", BAD_CHECKPOINTS, ids=lambda c: c.id)
@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_commands_refuse_bad_checkpoint(command: str, case: Case, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = case.make(tmp_path)
    argv, out = _command(command, ckpt, tmp_path)
    result = run_cli(capsys, argv)
    assert_one_line_error(result, ckpt, *case.words)
    assert_no_output(out)


# ------------------------------------------------------ a checkpoint of another band set
def test_predict_refuses_patches_of_another_band_set(tmp_path: Path, l4s_checkpoint: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """rgbd patches (4 bands) given to an l4s14 checkpoint: refused, naming the patch."""
    data = make_split_folder(tmp_path / "rgbd", n=2, n_bands=4)
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", l4s_checkpoint, data, "--out", out])
    assert_one_line_error(result, "image_0.h5", "4 bands", "expected 14")
    assert_no_output(out)


def test_evaluate_refuses_patches_of_another_band_set(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """l4s14 patches given to an rgbd checkpoint (with rgbd features): refused."""
    ckpt = write_checkpoint(tmp_path / "rgbd.ckpt", "rgbd", ("vari", "relief"))
    data = make_split_folder(tmp_path / "l4s", n=2, n_bands=14)
    out = tmp_path / "out"
    result = run_cli(capsys, ["evaluate", "--checkpoint", ckpt, "--data", data, "--out", out])
    assert_one_line_error(result, "image_0.h5", "14 bands", "expected 4")
    assert_no_output(out)
