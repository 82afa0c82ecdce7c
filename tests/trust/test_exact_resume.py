"""Exact resume: training SIGKILLed during an epoch and continued with ``--resume`` ends
with the same weights and the same ``metrics.csv`` as an uninterrupted run (CPU,
deterministic mode, same seed), with the flips alone and with the whole recipe
(photometric, elevation and crop augmentation, EMA weight averaging)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.trust.conftest import (
    make_split_folder,
    run_cli_subprocess,
    sigkill,
    start_cli,
    wait_for,
)

EPOCHS = 3
CONFIG = {
    "name": "resume",
    "data": {"band_set": "l4s14", "features": ["ndvi", "slope"], "batch_size": 2, "augment": True},
    "model": {"name": "unet", "options": {"base_channels": 8, "depth": 2}},
    "optim": {"name": "adam", "lr": 0.01},
    "schedule": {"name": "cosine", "min_lr": 0.001},
    "trainer": {"max_epochs": EPOCHS, "accelerator": "cpu", "devices": 1, "patience": 0,
                "deterministic": True, "seed": 3, "progress": False},
}


RECIPE = {
    "augmentation": {
        "photometric": {"probability": 0.8, "brightness": 0.2, "contrast": 0.2, "gamma": 0.2,
                        "saturation": 0.2, "hue": 0.05, "blur": 0.5, "noise": 0.02},
        "elevation": {"probability": 0.8, "relief": 0.3, "offset_m": 5.0},
        "crop": {"probability": 0.5, "min_scale": 0.6},
    },
}


@pytest.fixture(scope="module", params=["flips", "recipe"])
def setup(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    data = make_split_folder(root / "data", n=12, size=32)
    config = root / "cfg.yaml"
    raw = {**CONFIG, "data": dict(CONFIG["data"]), "trainer": dict(CONFIG["trainer"])}
    if request.param == "recipe":
        raw["data"].update(RECIPE)
        raw["trainer"]["averaging"] = {"name": "ema", "decay": 0.9}
    config.write_text(yaml.safe_dump(raw))
    return config, data


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_resume_after_sigkill_matches_an_uninterrupted_run(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, data = setup
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    argv = ["train", "--config", config, "--data", data]

    done = run_cli_subprocess([*argv, "--out", reference])
    assert done.code == 0, done.err

    proc = start_cli([*argv, "--out", killed])
    wait_for(lambda: (killed / "last.ckpt").is_file(), proc, timeout=120, what="the first last.ckpt")
    sigkill(proc)  # during epoch 2 (epoch 1's checkpoint was just renamed into place)
    epochs_done = torch.load(killed / "last.ckpt", weights_only=True)["epoch"]
    assert epochs_done < EPOCHS - 1, "the kill came too late to test a resume"

    resumed = run_cli_subprocess([*argv, "--out", killed, "--resume"])
    assert resumed.code == 0, resumed.err

    assert (killed / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    expected, got = _weights(reference), _weights(killed)
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert different == [], f"weights differ after resume: {different[:5]}"
