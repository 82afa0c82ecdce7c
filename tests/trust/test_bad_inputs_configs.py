"""Catalogue of bad experiment configs and run folders, through ``slidemap train``.

A bad config must stop ``train`` before any training, with one line naming the config file
and the key, and leave the run folder empty (no ``config.yaml``, ``stats.json`` or
checkpoint that would make a later ``--resume`` believe a run had started).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.trust.conftest import (
    assert_no_output,
    assert_one_line_error,
    make_split_folder,
    run_cli,
)

#: a valid, tiny experiment; each case edits one thing.
VALID: dict[str, Any] = {
    "name": "tiny",
    "data": {"band_set": "l4s14", "features": ["ndvi"], "batch_size": 2},
    "model": {"name": "unet", "options": {"base_channels": 4, "depth": 2}},
    "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "patience": 0},
}


def _edit(section: str, key: str, value: Any) -> dict[str, Any]:
    config = yaml.safe_load(yaml.safe_dump(VALID))
    if section:
        config.setdefault(section, {})[key] = value
    else:
        config[key] = value
    return config


@dataclass(frozen=True)
class Case:
    """``config``: a mapping dumped as YAML, or raw text; ``words`` expected in the line."""

    id: str
    config: dict[str, Any] | str
    words: tuple[str, ...]
    overrides: tuple[str, ...] = field(default=())


CONFIG_CASES: list[Case] = [
    Case("unknown top-level key", _edit("", "optimiser", {"lr": 1}), ("unknown key 'optimiser'",)),
    Case("misspelt nested key", _edit("trainer", "max_epoch", 3), ("unknown key", "max_epochs")),
    Case("unknown model name", _edit("model", "name", "unet_cbma"), ("unknown model", "unet_cbam")),
    Case("unknown model option", _edit("model", "options", {"widht": 8}), ("widht",)),
    Case("wrong type", _edit("trainer", "max_epochs", "ten"), ("max_epochs",)),
    Case("unknown feature", _edit("data", "features", ["ndwi"]), ("unknown feature", "ndwi")),
    Case("unknown loss", _edit("", "loss", [{"name": "hinge"}]), ("unknown loss", "hinge")),
    Case("threshold out of range", _edit("", "threshold", 1.5), ("threshold",)),
    Case("negative batch size", _edit("data", "batch_size", -2), ("batch_size",)),
    Case("unknown band set", _edit("data", "band_set", "l4s15"), ("l4s15",)),
    Case("feature needs a band the set lacks", _edit("data", "band_set", "rgbd"), ("ndvi", "rgbd")),
    Case("not YAML", "name: [unclosed\n  - : :\n", ("not valid YAML",)),
    Case("top level is a list", "- name: tiny\n", ("mapping",)),
    Case("empty file", "", ("mapping",)),
    Case("--set without '='", VALID, ("trainer.max_epochs",), overrides=("trainer.max_epochs",)),
    Case("--set unknown key", VALID, ("trainer.epochs",), overrides=("trainer.epochs=3",)),
]


def _write(folder: Path, config: dict[str, Any] | str) -> Path:
    path = folder / "cfg.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_split_folder(tmp_path / "data", n=2)


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.id)
def test_train_refuses_bad_config(case: Case, tmp_path: Path, data: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = _write(tmp_path, case.config)
    run = tmp_path / "run"
    sets = [arg for override in case.overrides for arg in ("--set", override)]
    result = run_cli(capsys, ["train", "--config", config, "--data", data, "--out", run, *sets])
    assert_one_line_error(result, config, *case.words)
    assert_no_output(run)


@dataclass(frozen=True)
class RunCase:
    """A bad run folder or data for a valid config: ``make(tmp) -> (argv tail, culprit)``."""

    id: str
    make: Callable[[Path, Path], tuple[list[str | Path], Path]]
    words: tuple[str, ...]


def _missing_config(tmp: Path, data: Path) -> tuple[list[str | Path], Path]:
    return ["--config", tmp / "nope.yaml", "--data", data, "--out", tmp / "run"], tmp / "nope.yaml"


def _resume_without_last(tmp: Path, data: Path) -> tuple[list[str | Path], Path]:
    (tmp / "run").mkdir()
    return ["--config", _write(tmp, VALID), "--data", data, "--out", tmp / "run", "--resume"], tmp / "run"


def _patches_of_another_band_set(tmp: Path, data: Path) -> tuple[list[str | Path], Path]:
    rgbd = make_split_folder(tmp / "rgbd", n=2, n_bands=4)
    return ["--config", _write(tmp, VALID), "--data", rgbd, "--out", tmp / "run"], rgbd / "img" / "image_0.h5"


def _no_data(tmp: Path, data: Path) -> tuple[list[str | Path], Path]:
    return ["--config", _write(tmp, VALID), "--out", tmp / "run"], tmp / "cfg.yaml"


RUN_CASES: list[RunCase] = [
    RunCase("config does not exist", _missing_config, ("does not exist",)),
    RunCase("--resume without last.ckpt", _resume_without_last, ("last.ckpt",)),
    RunCase("patches of another band set", _patches_of_another_band_set, ("4 bands", "expected 14")),
    RunCase("no --data and no data.root", _no_data, ("--data",)),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=lambda c: c.id)
def test_train_refuses_bad_run(case: RunCase, tmp_path: Path, data: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    tail, culprit = case.make(tmp_path, data)
    result = run_cli(capsys, ["train", *tail])
    assert_one_line_error(result, culprit, *case.words)
    assert_no_output(tmp_path / "run")


def test_train_refuses_to_overwrite_a_run(tmp_path: Path, data: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.ckpt").write_bytes(b"work of three days")
    result = run_cli(capsys, ["train", "--config", _write(tmp_path, VALID), "--data", data,
                              "--out", run])
    assert_one_line_error(result, run, "--resume")
    assert (run / "last.ckpt").read_bytes() == b"work of three days"
