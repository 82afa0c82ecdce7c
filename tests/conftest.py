"""Shared fixtures: tiny synthetic data, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    # Two xdist workers on two cores: one intra-op thread each avoids oversubscription.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:  # pragma: no cover
            pass


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repo; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Landslide4Sense root (TrainData/ValidData/TestData), 48 patches."""
    from slidemap.data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("synthetic") / "l4s"
    generate_dataset(out, n_patches=48, seed=7)
    return out


# ------------------------------------------------ training fixtures (tests/training, tests/cli)
def _tiny_config(root: Path, **trainer: object):
    """A width-8 UNet on all seven features, a few CPU epochs, on the dataset at ``root``."""
    from slidemap.config import experiment_from_dict

    return experiment_from_dict({
        "name": "tiny",
        "data": {"root": str(root), "batch_size": 4},
        "model": {"name": "unet", "options": {"base_channels": 8, "depth": 2}},
        "optim": {"lr": 0.005},
        "trainer": {"max_epochs": 6, "patience": 0, "seed": 3, "accelerator": "cpu",
                    "devices": 1, "progress": False, **trainer},
    })


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(root, **trainer_overrides) -> ExperimentConfig`` (see ``_tiny_config``)."""
    return _tiny_config


@pytest.fixture(scope="session")
def tiny_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """``RunResult`` of one tiny training run on ``synthetic_root`` (trained once per session)."""
    from slidemap.workflows.train import train_and_report

    return train_and_report(_tiny_config(synthetic_root), tmp_path_factory.mktemp("tiny") / "run")
