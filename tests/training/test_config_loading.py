"""Config loading: types, unknown keys and names, overrides, packaged configs.

``slidemap.config`` checks the schema; the registry names (models, losses, features) are
checked by ``slidemap.workflows.configs``, whose loaders every command uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slidemap.config import (
    ExperimentConfig,
    experiment_from_dict,
    load_compare_config,
    load_config,
    save_config,
)
from slidemap.errors import ConfigError
from slidemap.workflows.configs import load_comparison, load_experiment


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_follow_the_paper() -> None:
    config = ExperimentConfig()
    assert config.optim.name == "adam" and config.optim.lr == 1e-3
    assert [t.name for t in config.loss] == ["bce"]
    assert len(config.data.features) == 7 and config.threshold == "best_f1"


def test_unknown_key_names_the_file_the_dotted_key_and_a_close_match(tmp_path: Path) -> None:
    path = _write(tmp_path, {"trainer": {"max_epoch": 3}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "'trainer.max_epoch'" in message and "max_epochs" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, {"data": {"batch_size": "sixteen"}})
    with pytest.raises(ConfigError, match=r"'data.batch_size' must be an integer"):
        load_config(path)


def test_unknown_model_and_loss_names_fail_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.name: unett.*did you mean 'unet'"):
        load_experiment(_write(tmp_path, {"model": {"name": "unett"}}))
    with pytest.raises(ConfigError, match=r"loss\[0\].name: focall"):
        load_experiment(_write(tmp_path, {"loss": [{"name": "focall"}]}))


def test_values_out_of_range_name_the_key_and_the_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'threshold' must lie in \[0, 1\], got 1.5"):
        load_config(_write(tmp_path, {"threshold": 1.5}))
    with pytest.raises(ConfigError, match=r"'data.batch_size' must be positive, got 0"):
        load_config(_write(tmp_path, {"data": {"batch_size": 0}}))
    with pytest.raises(ConfigError, match=r"'data.num_workers' must be >= 0, got -1"):
        load_config(_write(tmp_path, {"data": {"num_workers": -1}}))
    with pytest.raises(ConfigError, match=r"'loss' needs at least one entry"):
        load_config(_write(tmp_path, {"loss": []}))
    with pytest.raises(ConfigError, match=r"'optim.lr' must be a number, got True"):
        load_config(_write(tmp_path, {"optim": {"lr": True}}))
    assert load_config(_write(tmp_path, {"optim": {"lr": "1e-3"}})).optim.lr == 1e-3  # YAML 1.1 text


def test_overrides_are_yaml_scalars_and_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "x"})
    config = load_config(path, ["trainer.max_epochs=3", "optim.lr=5e-4", "data.augment=false",
                                "data.features=[ndvi, slope]", "loss.0.weight=0.5",
                                "threshold=0.4", "trainer.devices=2"])
    assert config.trainer.max_epochs == 3 and config.optim.lr == 5e-4
    assert config.data.augment is False and config.data.features == ["ndvi", "slope"]
    assert config.loss[0].weight == 0.5 and config.threshold == 0.4 and config.trainer.devices == 2
    with pytest.raises(ConfigError, match="'optim.lrr'"):
        load_config(path, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(path, ["optim.lr"])


def test_to_dict_round_trips_through_saved_yaml(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, {"name": "rt"}), ["model.options={base_channels: 8}"])
    saved = save_config(config, tmp_path / "out" / "config.yaml")
    assert experiment_from_dict(yaml.safe_load(saved.read_text())) == config


@pytest.mark.parametrize("name", ["unet", "unet_cbam", "segnet", "dpfcn"])
def test_paper_configs_load_from_the_package(name: str) -> None:
    config = load_experiment(f"paper/{name}.yaml")
    assert config.model.name == name and config.model.options["base_channels"] == 64
    assert config.data.batch_size == 16 and config.trainer.max_epochs == 100


def test_compare_configs_resolve_every_variant() -> None:
    paper = load_comparison("configs/paper/compare.yaml")
    assert list(paper.experiments()) == ["DP-FCN", "SegNet", "UNet", "UNet-CBAM"]
    demo = load_comparison("demo.yaml", ["base.trainer.max_epochs=2"])
    assert all(e.trainer.max_epochs == 2 for e in demo.experiments().values())


def test_compare_variant_with_a_bad_override_names_the_variant(tmp_path: Path) -> None:
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump({"models": [
        {"name": "A", "model": {"name": "unet"}, "overrides": {"optim": {"lrr": 1}}}]}))
    with pytest.raises(ConfigError, match=r"models\[A\].*'optim.lrr'"):
        load_compare_config(path)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_an_empty_list_of_training_areas_is_refused_in_words() -> None:
    with pytest.raises(ConfigError) as error:
        load_experiment("rgbd/unet.yaml", ["data.train_path=[]"])
    message = str(error.value)
    assert "'data.train_path'" in message
    assert "a non-empty list of strings" in message and "list of a string" not in message
