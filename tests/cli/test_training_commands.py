"""slidemap train / evaluate / compare / demo on the command line: outputs and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from slidemap.cli import main
from slidemap.evaluation.metrics import METRIC_KEYS


def test_evaluate_writes_metrics_json_with_every_key_and_consistent_identities(
    tiny_run, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    status = main(["evaluate", "--checkpoint", str(tiny_run.best_checkpoint), "--data",
                   str(synthetic_root), "--split", "test", "--out", str(out), "--panels", "2"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics)[: len(METRIC_KEYS)] == list(METRIC_KEYS)
    # then how the numbers were made: the engine auto chose for patches, no TTA, no cleaning
    assert (metrics["engine"], metrics["tta"], metrics["postprocess"]) == ("torch", False, False)
    assert metrics["checkpoint"] == str(tiny_run.best_checkpoint)
    tp, fp, fn, tn = (metrics[k] for k in ("tp", "fp", "fn", "tn"))
    assert tp + fp + fn + tn == metrics["n_pixels"] == 7 * 128 * 128
    assert metrics["dice"] == metrics["f1"]
    assert math.isclose(metrics["dice"], 2 * metrics["iou"] / (1 + metrics["iou"]), rel_tol=1e-9)
    assert math.isclose(metrics["balanced_accuracy"],
                        (metrics["recall"] + metrics["specificity"]) / 2, rel_tol=1e-9)
    assert math.isclose(metrics["precision"], tp / (tp + fp), rel_tol=1e-9)
    assert metrics["threshold"] == pytest.approx(tiny_run.threshold)
    for figure in ("roc.png", "pr.png", "confusion.png", "panels.png"):
        assert (out / figure).stat().st_size > 1000
    assert "F1" in capsys.readouterr().out


def test_evaluate_with_an_explicit_threshold_uses_it(tiny_run, synthetic_root: Path,
                                                     tmp_path: Path) -> None:
    assert main(["evaluate", "--checkpoint", str(tiny_run.best_checkpoint), "--data",
                 str(synthetic_root / "TestData"), "--out", str(tmp_path), "--threshold", "0.3",
                 "--panels", "0"]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["threshold"] == 0.3


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_train_with_a_bad_config_exits_nonzero_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"max_epoch": 2}}))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) != 0
    line = _one_error_line(capsys)
    assert str(config) in line and "trainer.max_epoch" in line
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) != 0
    assert "does not exist" in _one_error_line(capsys)


def test_train_without_data_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "nodata.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "unet"}}))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) != 0
    assert "--data" in _one_error_line(capsys)


def test_evaluate_with_a_non_checkpoint_exits_nonzero_with_one_line(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.ckpt"
    fake.write_text("not a checkpoint")
    assert main(["evaluate", "--checkpoint", str(fake), "--data", str(synthetic_root),
                 "--out", str(tmp_path / "o")]) != 0
    assert str(fake) in _one_error_line(capsys)


@pytest.mark.slow
def test_train_cli_then_compare_cli_on_tiny_settings(
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = ["--set", "trainer.max_epochs=1", "--set", "trainer.limit_train_batches=2",
            "--set", "trainer.limit_val_batches=1", "--set", "data.batch_size=4",
            "--set", "model.options={base_channels: 8, depth: 2}"]
    assert main(["train", "--config", "paper/unet.yaml", "--data", str(synthetic_root),
                 "--out", str(tmp_path / "run"), *fast]) == 0
    assert (tmp_path / "run" / "best.ckpt").is_file()
    compare = tmp_path / "cmp.yaml"
    compare.write_text(yaml.safe_dump({
        "base": {"data": {"batch_size": 4}, "trainer": {
            "max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "patience": 0,
            "accelerator": "cpu", "devices": 1}},
        "models": [
            {"name": "UNet", "model": {"name": "unet", "options": {"base_channels": 8, "depth": 2}}},
            {"name": "UNet-CBAM", "model": {"name": "unet_cbam",
                                            "options": {"base_channels": 8, "depth": 2,
                                                        "reduction": 4}}}],
        "panels": {"count": 2},
        "activations": {"model": "UNet-CBAM", "layer": "encoder.1", "max_channels": 8},
    }))
    out = tmp_path / "cmp"
    assert main(["compare", "--config", str(compare), "--data", str(synthetic_root),
                 "--out", str(out)]) == 0
    for name in ("table1.md", "table1.csv", "table1.json", "roc.png", "pr.png", "confusion.png",
                 "panels.png", "curves.png", "activations.png", "features.png", "report.md",
                 "report.html"):
        assert (out / name).is_file(), name
    table = json.loads((out / "table1.json").read_text())
    assert "UNet-CBAM" in json.dumps(table)
    assert "report.html" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    n_pixels = table["rows"]["UNet"]["n_pixels"]
    assert "**Table 1.** Every model on the test split" in report and f"{n_pixels:,}" in report
    assert "These data are synthetic" in report  # synthetic_root carries synthetic.json
    seed = yaml.safe_load((out / "runs" / "unet" / "config.yaml").read_text())["trainer"]["seed"]
    for cell in ("runs/unet/config.yaml", "runs/unet-cbam/config.yaml", f"| {seed} |"):
        assert cell in report
