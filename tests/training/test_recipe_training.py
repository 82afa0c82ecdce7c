"""Training on every labelled area without validation data, and weight averaging (EMA/SWA)
through Lightning's callback: what the checkpoints hold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from slidemap.config import experiment_from_dict
from slidemap.errors import ConfigError
from slidemap.training.callbacks import read_history
from slidemap.training.run import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realdata"))
from rgbd_fakes import write_rgbd_split  # noqa: E402


@pytest.fixture(scope="module")
def areas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("areas")
    return write_rgbd_split(root / "area_A", 6, seed=1), write_rgbd_split(root / "area_B", 4, seed=2)


def config(areas: tuple[Path, Path], **changes: object):
    raw = {
        "name": "recipe",
        "data": {"train_path": [str(a) for a in areas], "val_path": None, "band_set": "rgbd",
                 "features": ["exg", "slope"], "elevation": "relative", "batch_size": 4},
        "model": {"name": "unet", "options": {"base_channels": 4, "depth": 2}},
        "optim": {"name": "adam", "lr": 0.01},
        "trainer": {"max_epochs": 2, "patience": 0, "seed": 1, "accelerator": "cpu", "devices": 1,
                    "progress": False, "deterministic": True},
        "threshold": 0.5,
    }
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return experiment_from_dict(raw)


def weights(path: Path, key: str = "state_dict") -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def test_training_on_every_area_without_validation_keeps_the_last_epoch(areas, tmp_path: Path) -> None:
    result = train(config(areas), tmp_path / "run")
    rows = read_history(tmp_path / "run" / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert "train_f1" in rows[0] and not any(k.startswith("val_") for k in rows[0])
    best, last = weights(result.best_checkpoint), weights(result.last_checkpoint)
    assert all(torch.equal(best[k], last[k]) for k in last)  # best.ckpt is the last epoch
    assert result.threshold == 0.5
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "area_A" in saved and "area_B" in saved


@pytest.mark.parametrize(("changes", "message"), [
    ({"threshold": "best_f1"}, "threshold: best_f1"),
    ({"trainer__patience": 3}, "early stopping"),
])
def test_a_run_without_validation_refuses_to_choose_on_it(areas, tmp_path: Path, changes,
                                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train(config(areas, **changes), tmp_path / "run")


def test_swa_checkpoint_holds_the_mean_of_the_epoch_end_weights(areas, tmp_path: Path) -> None:
    """SWA from epoch 1 over 3 epochs = (weights after epoch 1 + after epoch 2) / 2; the plain
    weights are kept for a resume. Runs of 2 and 3 epochs without averaging (same seed,
    deterministic, constant learning rate) give those weights."""
    two = train(config(areas, trainer__max_epochs=2), tmp_path / "two")
    three = train(config(areas, trainer__max_epochs=3), tmp_path / "three")
    swa = train(config(areas, trainer__max_epochs=3,
                       trainer__averaging={"name": "swa", "start_epoch": 1}), tmp_path / "swa")
    after_1, after_2 = weights(two.last_checkpoint), weights(three.last_checkpoint)
    averaged = weights(swa.last_checkpoint)
    plain = weights(swa.last_checkpoint, "current_model_state")
    floats = [k for k in after_2 if after_2[k].is_floating_point()]
    assert floats
    for key in floats:
        torch.testing.assert_close(plain[key], after_2[key])
        torch.testing.assert_close(averaged[key], (after_1[key] + after_2[key]) / 2)


def test_ema_before_its_start_epoch_leaves_the_weights_plain(areas, tmp_path: Path) -> None:
    plain = train(config(areas), tmp_path / "plain")
    late = train(config(areas, trainer__averaging={"name": "ema", "decay": 0.5, "start_epoch": 5}),
                 tmp_path / "late")
    early = train(config(areas, trainer__averaging={"name": "ema", "decay": 0.5, "start_epoch": 0}),
                  tmp_path / "early")
    a, b, c = (weights(r.last_checkpoint) for r in (plain, late, early))
    assert all(torch.equal(a[k], b[k]) for k in a)  # nothing averaged yet
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert "current_model_state" in torch.load(early.last_checkpoint, weights_only=True)


def test_augmentation_a_band_set_cannot_take_is_refused_when_the_config_loads() -> None:
    from slidemap.workflows.configs import load_experiment

    two_bands = "data.band_set={name: rg, bands: [{name: R, role: red, unit: DN}, {name: D, role: dsm}]}"
    with pytest.raises(ConfigError, match=r"unet\.yaml: 'data\.augmentation': saturation and hue"):
        load_experiment("configs/rgbd/unet.yaml", [two_bands, "data.features=[]",
                                                   "data.augmentation.photometric={probability: 1, hue: 0.1}"])
    config = load_experiment("configs/rgbd/unet.yaml", [
        "data.augmentation.photometric={probability: 1, hue: 0.1}", "data.holdout.fraction=0.2"])
    assert config.data.augmentation.photometric.hue == 0.1 and config.data.holdout.block_px == 512
