"""Exact resume: training SIGKILLed during an epoch and continued with ``--resume`` ends
with the same weights and the same ``metrics.csv`` as an uninterrupted run (CPU,
deterministic mode, same seed)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.trust.conftest import (
    RESUME_EPOCHS,
    assert_same_run,
    run_cli_subprocess,
    sigkill,
    start_cli,
    wait_for,
)

EPOCHS = RESUME_EPOCHS


def test_resume_after_sigkill_matches_an_uninterrupted_run(
    resume_setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config, data, reference = resume_setup
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
