"""Exact resume: training SIGKILLed during an epoch and continued with ``--resume`` ends
with the same weights and the same ``metrics.csv`` as an uninterrupted run (CPU,
deterministic mode, same seed), with the flips alone and with the whole recipe
(photometric, elevation and crop augmentation, EMA weight averaging)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trust.conftest import (
    RESUME_CONFIG,
    RESUME_EPOCHS,
    assert_same_run,
    run_cli_subprocess,
    sigkill,
    start_cli,
    train_reference,
    wait_for,
)

EPOCHS = RESUME_EPOCHS
RECIPE = {
    "augmentation": {
        "photometric": {"probability": 0.8, "brightness": 0.2, "contrast": 0.2, "gamma": 0.2,
                        "saturation": 0.2, "hue": 0.05, "blur": 0.5, "noise": 0.02},
        "elevation": {"probability": 0.8, "relief": 0.3, "offset_m": 5.0},
        "crop": {"probability": 0.5, "min_scale": 0.6},
    },
}


@pytest.fixture(scope="module", params=["flips", "recipe"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(config, data, reference run)``: the flips alone (the session's shared run) or the
    whole recipe."""
    if request.param == "flips":
        return request.getfixturevalue("resume_setup")
    raw = {**RESUME_CONFIG, "data": {**RESUME_CONFIG["data"], **RECIPE},
           "trainer": {**RESUME_CONFIG["trainer"], "averaging": {"name": "ema", "decay": 0.9}}}
    return train_reference(tmp_path_factory.mktemp("resume_recipe"), raw)


def test_resume_after_sigkill_matches_an_uninterrupted_run(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config, data, reference = setup
    killed = tmp_path / "killed"
    argv = ["train", "--config", config, "--data", data]

    proc = start_cli([*argv, "--out", killed])
    wait_for(lambda: (killed / "last.ckpt").is_file(), proc, timeout=600, what="the first last.ckpt")
    sigkill(proc)  # during epoch 2 (epoch 1's checkpoint was just renamed into place)
    epochs_done = torch.load(killed / "last.ckpt", weights_only=True)["epoch"]
    assert epochs_done < EPOCHS - 1, "the kill came too late to test a resume"

    resumed = run_cli_subprocess([*argv, "--out", killed, "--resume"])
    assert resumed.code == 0, resumed.err
    assert_same_run(reference, killed)
