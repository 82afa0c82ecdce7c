"""``benchmarks/real_rgbd.py`` end to end on the tiny fake areas: one table row per variant,
paired differences against the first variant, the JSON results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "real_rgbd.py"


def test_benchmark_cross_validates_each_variant_and_pairs_them(
        rgbd_areas: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("real_rgbd", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "real_rgbd.json"
    status = module.main(["--data", str(rgbd_areas[0].parent), "--variants", "unet,cbam_skip",
                          "--seeds", "1", "--epochs", "1", "--work", str(tmp_path / "work"),
                          "--out", str(out), "--set", "data.holdout.block_px=64"])
    assert status == 0
    results = json.loads(out.read_text())
    assert list(results["variants"]) == ["unet", "cbam_skip"]
    skip = results["variants"]["cbam_skip"]
    assert "model.options.cbam_encoder=false" in skip["overrides"]
    assert set(skip["summary"]) == {"area_A", "area_B", "mean over areas"}
    # every variant is compared with the first, on the same resampled blocks
    assert [(d["first"], d["second"]) for d in results["bootstrap"]["differences"]] == [
        ("CBAM skips only", "UNet")]
    assert len(results["differences"]) == 1 and "CBAM skips only" in results["differences"][0]
    printed = capsys.readouterr().out
    assert "| UNet |" in printed and "| CBAM skips only |" in printed
    run = tmp_path / "work" / "cbam_skip-e1" / "runs" / "area_A" / "seed0"
    options = yaml.safe_load((run / "config.yaml").read_text())["model"]["options"]
    assert options["cbam_encoder"] is False and options["cbam_decoder"] is False
    assert options.get("cbam_skip", True) is True
