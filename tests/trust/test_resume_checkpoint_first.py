"""``train --resume`` is checkpoint-first: the network, its options, the band set and the
input pipeline come from ``last.ckpt``; a config that disagrees on any of them is refused
with one line naming the config, the field and the checkpoint, and the run is untouched.
What to train with (epochs, learning rate) may change on resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.trust.conftest import assert_one_line_error, make_split_folder, run_cli

CONFIG: dict[str, Any] = {
    "name": "first",
    "data": {"band_set": "l4s14", "features": ["ndvi"], "batch_size": 2},
    "model": {"name": "unet", "options": {"base_channels": 4, "depth": 2}},
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "patience": 0,
                "progress": False, "seed": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(data, run folder)`` of one finished one-epoch run."""
    from slidemap.cli import main

    root = tmp_path_factory.mktemp("resume_first")
    data = make_split_folder(root / "data", n=4, size=32)
    config = root / "cfg.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    assert main(["train", "--config", str(config), "--data", str(data), "--out", str(root / "run")]) == 0
    return data, root / "run"


EDITS: dict[str, tuple[str, dict[str, Any], str]] = {
    # (section, its new entries, the field the error must name)
    "another model": ("model", {"name": "segnet"}, "'model.name'"),
    "another width": ("model", {"options": {"base_channels": 8, "depth": 2}},
                      "'model.options.base_channels'"),
    "options left to their defaults": ("model", {"options": {}}, "'model.options."),
    "another feature list": ("data", {"features": ["ndvi", "slope"]}, "'data.features'"),
    "another band set": ("data", {"band_set": "rgbd", "features": ["exg"]}, "'data.band_set'"),
    "another pixel size": ("data", {"pixel_size_m": 20.0}, "'data.pixel_size_m'"),
    "relative elevation": ("data", {"elevation": "relative"}, "'data.elevation'"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_resume_refuses_a_config_that_changes_the_network_or_its_input(
    edit: str, trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, run = trained
    section, entries, field = EDITS[edit]
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config[section].update(entries)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config))
    before = (run / "last.ckpt").read_bytes()
    result = run_cli(capsys, ["train", "--config", path, "--data", data, "--out", run, "--resume"])
    assert_one_line_error(result, path, field, "last.ckpt", "trained with")
    assert (run / "last.ckpt").read_bytes() == before


def test_resume_continues_the_checkpoint_with_new_training_settings(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, run = trained
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["trainer"]["max_epochs"] = 2
    config["optim"] = {"lr": 0.002}
    path = tmp_path / "more.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli(capsys, ["train", "--config", path, "--data", data, "--out", run, "--resume"])
    assert result.code == 0, result.err
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 1  # the second epoch
    saved = yaml.safe_load((run / "config.yaml").read_text())
    # the run folder's config says what the checkpoint holds: every option, resolved
    assert saved["optim"]["lr"] == 0.002
    options = saved["model"]["options"]
    assert (options["base_channels"], options["depth"], options["cbam_encoder"]) == (4, 2, False)
