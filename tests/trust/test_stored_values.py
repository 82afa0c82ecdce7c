"""Every stored value is checked where it enters: checkpoints, ONNX metadata, statistics
files, band sets and configs (YAML included) refuse NaN, out-of-range, mistyped and
oversized values with one line naming the file and the field; a file is recognised as a
checkpoint by its content, not its name; JSON outputs are strict."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import yaml

from slidemap.data.normalization import ChannelStats
from slidemap.errors import ConfigError, InputError
from slidemap.io.atomic import write_json_atomic
from slidemap.io.yamlsafe import load_yaml
from tests.trust.conftest import (
    assert_no_output,
    assert_one_line_error,
    make_split_folder,
    run_cli,
    write_checkpoint,
    write_h5,
    write_scene,
)


def _strict_json(path: Path) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path.name} holds {constant}: not JSON (RFC 8259)")

    return json.loads(path.read_text(), parse_constant=refuse)


def _meta(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        meta.update(changes)

    return edit


def _normalization(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        meta["normalization"][key] = value

    return edit


def _band(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        meta["pipeline"]["band_set"]["bands"][0][key] = value

    return edit


#: (hand edit of the 'slidemap' section, words of the one error line)
BAD_SECTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], tuple[str, ...]]] = {
    "threshold NaN": (_meta(threshold=math.nan), ("slidemap.threshold", "nan")),
    "threshold 1.5": (_meta(threshold=1.5), ("slidemap.threshold", "[0, 1]")),
    "threshold a string": (_meta(threshold="0.5"), ("slidemap.threshold",)),
    "threshold a bool": (_meta(threshold=True), ("slidemap.threshold",)),
    "format version a string": (_meta(format_version="1"), ("slidemap.format_version",)),
    "format version 0": (_meta(format_version=0), ("slidemap.format_version",)),
    "in_channels 0": (_meta(in_channels=0), ("slidemap.in_channels",)),
    "in_channels a billion": (_meta(in_channels=10**9), ("slidemap.in_channels",)),
    "model a string": (_meta(model="unet"), ("slidemap.model",)),
    "std NaN": (_normalization("std", [math.nan] * 14), ("slidemap.normalization", "finite")),
    "mean infinite": (_normalization("mean", [math.inf] * 14), ("slidemap.normalization", "finite")),
    "statistics of 13 channels": (_normalization("names", [f"c{i}" for i in range(13)]),
                                  ("slidemap.normalization",)),
    "band scale NaN": (_band("physical_per_unit", math.nan), ("slidemap.pipeline", "physical_per_unit")),
    "band scale 0": (_band("physical_per_unit", 0.0), ("slidemap.pipeline", "physical_per_unit")),
    "pixel size -10": (lambda m: m["pipeline"].update(pixel_size_m=-10.0), ("slidemap.pipeline", "pixel_size_m")),
    "a model larger than memory": (
        lambda m: m.update(model={"name": "unet", "options": {"base_channels": 40_000, "depth": 2}}),
        ("parameters", "memory budget")),
}


def _hand_edited(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    checkpoint = torch.load(write_checkpoint(path), weights_only=True)
    edit(checkpoint["slidemap"])
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("case", list(BAD_SECTIONS))
def test_a_hand_edited_checkpoint_value_is_refused_naming_the_field(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, words = BAD_SECTIONS[case]
    checkpoint = _hand_edited(tmp_path / "edited.ckpt", edit)
    data = make_split_folder(tmp_path / "data", n=1)
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", checkpoint, data, "--out", out,
                              "--engine", "torch"])
    assert_one_line_error(result, "edited.ckpt", *words)
    assert_no_output(out)


def test_a_nan_threshold_never_reaches_metrics_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _hand_edited(tmp_path / "nan.ckpt", _meta(threshold=math.nan))
    data = make_split_folder(tmp_path / "data", n=2)
    out = tmp_path / "eval"
    result = run_cli(capsys, ["evaluate", "--checkpoint", checkpoint, "--data", data, "--out", out])
    assert_one_line_error(result, "nan.ckpt", "threshold")
    assert_no_output(out)


def test_nan_weights_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_checkpoint(tmp_path / "w.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    first = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][first] = torch.full_like(checkpoint["state_dict"][first], math.nan)
    torch.save(checkpoint, path)
    result = run_cli(capsys, ["export", "--checkpoint", path, "--out", tmp_path / "m.onnx"])
    assert_one_line_error(result, "w.ckpt", "NaN")


# ---------------------------------------------------------------- content, not name
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_an_h5_patch_passed_as_checkpoint_is_one_line(
    tmp_path: Path, engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = write_h5(tmp_path / "image_1.h5", {"img": np.zeros((8, 8, 14))})
    data = make_split_folder(tmp_path / "data", n=1)
    for argv in (["predict", "--checkpoint", patch, data, "--out", tmp_path / "out", "--engine", engine],
                 ["evaluate", "--checkpoint", patch, "--data", data, "--out", tmp_path / "eval"],
                 ["export", "--checkpoint", patch, "--out", tmp_path / "m.onnx"]):
        assert_one_line_error(run_cli(capsys, argv), "image_1.h5", "HDF5", "not a checkpoint")


def test_a_geotiff_passed_as_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, _ = write_scene(tmp_path / "scene")
    result = run_cli(capsys, ["predict", "--checkpoint", image, image, "--out", tmp_path / "out"])
    assert_one_line_error(result, "image.tif", "GeoTIFF", "not a checkpoint")


def test_a_checkpoint_and_a_model_are_told_by_content_not_suffix(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_split_folder(tmp_path / "data", n=1)
    misnamed = tmp_path / "model.onnx"
    misnamed.write_bytes(l4s_checkpoint.read_bytes())  # a torch checkpoint named .onnx
    exported = tmp_path / "exported.ckpt"
    assert run_cli(capsys, ["export", "--checkpoint", l4s_checkpoint, "--out", tmp_path / "e.onnx"]).code == 0
    exported.write_bytes((tmp_path / "e.onnx").read_bytes())  # an ONNX model named .ckpt
    for model, n in ((misnamed, 1), (exported, 2)):
        result = run_cli(capsys, ["predict", "--checkpoint", model, data, "--out", tmp_path / f"o{n}",
                                  "--engine", "onnx"])
        assert result.code == 0, result.err


# ----------------------------------------------------------------------- ONNX files
def _exported(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "model.onnx"
    assert run_cli(capsys, ["export", "--checkpoint", checkpoint, "--out", path]).code == 0
    return path


def _set_metadata(path: Path, text: str | None) -> Path:
    model = onnx.load(path)
    entries = [e for e in model.metadata_props if e.key != "slidemap"]
    del model.metadata_props[:]
    model.metadata_props.extend(entries)
    if text is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "slidemap", text
    onnx.save(model, path)
    return path


def _metadata(path: Path) -> dict[str, Any]:
    return json.loads(next(e.value for e in onnx.load(path).metadata_props if e.key == "slidemap"))


@pytest.mark.parametrize(("case", "words"), [
    ("threshold NaN", ("slidemap.threshold",)),
    ("size_multiple 0", ("slidemap.size_multiple",)),
    ("not JSON", ("not JSON",)),
    ("a list", ("not a mapping",)),
    ("no threshold", ("lacks threshold",)),
    ("std negative", ("slidemap.normalization",)),
    ("random bytes", ("nor a readable ONNX model",)),
    ("truncated", ("nor a readable ONNX model",)),
])
def test_a_bad_onnx_model_is_one_line(
    tmp_path: Path, l4s_checkpoint: Path, case: str, words: tuple[str, ...],
    capsys: pytest.CaptureFixture[str]
) -> None:
    path = _exported(tmp_path, l4s_checkpoint, capsys)
    meta = _metadata(path)
    if case == "threshold NaN":
        _set_metadata(path, json.dumps({**meta, "threshold": math.nan}))
    elif case == "size_multiple 0":
        _set_metadata(path, json.dumps({**meta, "size_multiple": 0}))
    elif case == "not JSON":
        _set_metadata(path, "{pipeline: yes")
    elif case == "a list":
        _set_metadata(path, "[1, 2]")
    elif case == "no threshold":
        _set_metadata(path, json.dumps({k: v for k, v in meta.items() if k != "threshold"}))
    elif case == "std negative":
        meta["normalization"]["std"][0] = -1.0
        _set_metadata(path, json.dumps(meta))
    elif case == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(3000))
    else:
        path.write_bytes(path.read_bytes()[:2000])
    data = make_split_folder(tmp_path / "data", n=1)
    result = run_cli(capsys, ["predict", "--checkpoint", path, data, "--out", tmp_path / "out",
                              "--engine", "onnx"])
    assert_one_line_error(result, "model.onnx", *words)
    assert_no_output(tmp_path / "out")


# -------------------------------------------------------------- statistics, band sets
def test_a_statistics_file_with_nan_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_text('{"names": ["a", "b"], "mean": [0.1, NaN], "std": [1.0, 1.0]}')
    with pytest.raises(InputError, match=r"stats\.json.*finite"):
        ChannelStats.load(path)


# ---------------------------------------------------------------------------- YAML
def _train(capsys: pytest.CaptureFixture[str], config: Path, data: Path, out: Path,
           *extra: str) -> Any:
    return run_cli(capsys, ["train", "--config", config, "--data", data, "--out", out, *extra])


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_split_folder(tmp_path / "data", n=2)


def test_a_config_with_two_trainer_blocks_is_refused(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("name: twice\ntrainer:\n  max_epochs: 50\n  patience: 5\nmodel:\n  name: unet\n"
                      "trainer:\n  accelerator: cpu\n")
    result = _train(capsys, config, tiny_data, tmp_path / "run")
    assert_one_line_error(result, "cfg.yaml", "'trainer' appears twice", "lines 2 and 7")
    assert_no_output(tmp_path / "run")


def test_duplicate_keys_are_found_at_any_depth_and_merge_keys_still_work() -> None:
    with pytest.raises(ConfigError, match="'max_epochs' appears twice"):
        load_yaml("trainer:\n  max_epochs: 1\n  max_epochs: 2\n")
    merged = load_yaml("base: &b {lr: 0.1, weight_decay: 0}\noptim:\n  <<: *b\n  lr: 0.5\n")
    assert merged["optim"] == {"lr": 0.5, "weight_decay": 0}


def test_an_alias_bomb_is_refused_at_once(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    config = tmp_path / "bomb.yaml"
    config.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    result = _train(capsys, config, tiny_data, tmp_path / "run")
    assert time.perf_counter() - started < 30
    assert_one_line_error(result, "bomb.yaml", "aliases expand")


def test_a_config_that_is_not_utf8_is_named(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes("name: glissement de terrain à Saint-Étienne\n".encode("latin-1"))
    result = _train(capsys, config, tiny_data, tmp_path / "run")
    assert_one_line_error(result, "latin1.yaml", "not UTF-8")


# ------------------------------------------------------------------ training options
BAD_OPTIONS: dict[str, tuple[str, str]] = {
    "learning rate NaN": ("optim.lr=.nan", "optim.lr"),
    "learning rate infinite": ("optim.lr=.inf", "optim.lr"),
    "negative weight decay": ("optim.weight_decay=-0.1", "optim.weight_decay"),
    "zero devices": ("trainer.devices=0", "trainer.devices"),
    "negative device index": ("trainer.devices=[-1]", "trainer.devices"),
    "no device listed": ("trainer.devices=[]", "trainer.devices"),
    "unknown precision": ("trainer.precision=17", "trainer.precision"),
    "unknown strategy": ("trainer.strategy=ddpp", "trainer.strategy"),
    "negative seed": ("trainer.seed=-1", "trainer.seed"),
    "seed beyond 32 bits": ("trainer.seed=4294967296", "trainer.seed"),
    "no training batches": ("trainer.limit_train_batches=0", "trainer.limit_train_batches"),
    "a fraction above 1": ("trainer.limit_val_batches=1.5", "trainer.limit_val_batches"),
    "plateau factor 1": ("schedule.factor=1.0", "schedule.factor"),
    "loss weight NaN": ("loss.0.weight=.nan", "loss[0].weight"),
    "pixel size 0": ("data.pixel_size_m=0", "data.pixel_size_m"),
    "band scale NaN in an inline band set": (
        "data.band_set={name: x, bands: [{name: R, role: red, physical_per_unit: .nan}]}",
        "physical_per_unit"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_training_options_torch_or_lightning_would_reject_are_refused_at_load(
    tmp_path: Path, tiny_data: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    override, key = BAD_OPTIONS[case]
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"name": "x", "data": {"features": []},
                                      "model": {"name": "unet", "options": {"depth": 2}}}))
    result = _train(capsys, config, tiny_data, tmp_path / "run", "--set", override)
    assert_one_line_error(result, "cfg.yaml", key)
    assert_no_output(tmp_path / "run")


def test_an_accelerator_this_machine_lacks_is_refused_at_load(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"name": "x", "trainer": {"accelerator": "gpu"}}))
    result = _train(capsys, config, tiny_data, tmp_path / "run")
    assert_one_line_error(result, "cfg.yaml", "accelerator", "no CUDA GPU")


# ------------------------------------------------------------------------- strict JSON
def test_the_json_writer_refuses_nan_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "summary.json", {"total_area_m2": math.nan})
    assert list(tmp_path.iterdir()) == []


def test_summary_and_metrics_are_strict_json(
    tmp_path: Path, scene_checkpoint: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "map"
    assert run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                            "--out", out, "--engine", "torch"]).code == 0
    _strict_json(out / "summary.json")
    data = tmp_path / "data"
    for i in range(2):  # no landslide anywhere: ROC-AUC is undefined and must be null
        write_h5(data / "img" / f"image_{i}.h5", {"img": np.random.default_rng(i).uniform(0, 1, (16, 16, 14))})
        write_h5(data / "mask" / f"mask_{i}.h5", {"mask": np.zeros((16, 16), np.uint8)})
    assert run_cli(capsys, ["evaluate", "--checkpoint", l4s_checkpoint, "--data", data,
                            "--out", tmp_path / "eval"]).code == 0
    metrics = _strict_json(tmp_path / "eval" / "metrics.json")
    assert metrics["roc_auc"] is None
