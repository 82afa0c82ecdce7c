"""The rgbd band set end to end on tiny fake patches: train, evaluate, predict, compare."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from rgbd_fakes import PATCH_PX, tiny_overrides

from slidemap.cli import main
from slidemap.evaluation.metrics import METRIC_KEYS
from slidemap.models.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def rgbd_run(rgbd_areas: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of the shipped ``configs/rgbd/unet_cbam.yaml``, shrunk, trained on area A."""
    run = tmp_path_factory.mktemp("rgbd_run") / "run"
    status = main(["train", "--config", "configs/rgbd/unet_cbam.yaml", "--out", str(run),
                   *tiny_overrides(*rgbd_areas)])
    assert status == 0
    return run


def test_rgbd_checkpoint_carries_the_relative_elevation_pipeline(rgbd_run: Path) -> None:
    loaded = load_checkpoint(rgbd_run / "best.ckpt")
    assert loaded.pipeline.band_set.name == "rgbd"
    assert loaded.pipeline.elevation == "relative"
    assert loaded.pipeline.channel_names == ["R", "G", "B", "DSM", "exg", "vari", "slope",
                                             "relief", "hillshade"]
    # the DSM channel's statistics are of relative elevation (metres around 0), not ~2,800 m
    dsm = loaded.stats.names.index("DSM")
    assert abs(float(loaded.stats.mean[dsm])) < 50


def test_rgbd_evaluate_on_any_folder_with_img_and_mask(
    rgbd_run: Path, rgbd_areas: tuple[Path, Path], tmp_path: Path, saved_figures
) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(rgbd_run / "best.ckpt"), "--data",
                 str(rgbd_areas[1]), "--out", str(out), "--panels", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics)[: len(METRIC_KEYS)] == list(METRIC_KEYS)
    assert metrics["n_pixels"] == 6 * PATCH_PX * PATCH_PX
    # the checkpoint's threshold (the config's best_f1, chosen on its validation data)
    assert metrics["threshold"] == pytest.approx(load_checkpoint(rgbd_run / "best.ckpt").threshold)
    # the panels show the two patches with the most landslide pixels, in true colour
    # (R, G, B: the band set's first three bands, not the Sentinel-2 indices)
    from slidemap.plots.panels import percentile_stretch

    def landslide_pixels(mask_path: Path) -> int:
        with h5py.File(mask_path) as h5:
            return int((h5["mask"][()] == 1).sum())

    masks = sorted((rgbd_areas[1] / "mask").glob("mask_*.h5"), key=landslide_pixels, reverse=True)
    panels = saved_figures(out / "panels.png")
    for row, mask_path in enumerate(masks[:2]):
        patch_id = mask_path.stem.removeprefix("mask_")
        assert panels.axes[3 * row].get_ylabel() == patch_id
        with h5py.File(rgbd_areas[1] / "img" / f"image_{patch_id}.h5") as h5:
            rgb = h5["img"][()][..., :3].transpose(2, 0, 1)
        np.testing.assert_array_equal(panels.axes[3 * row].images[0].get_array(), percentile_stretch(rgb))


def test_rgbd_predict_writes_official_format_masks_for_a_folder_of_patches(
    rgbd_run: Path, rgbd_areas: tuple[Path, Path], tmp_path: Path
) -> None:
    assert main(["predict", "--checkpoint", str(rgbd_run / "best.ckpt"),
                 str(rgbd_areas[1] / "img"), "--out", str(tmp_path)]) == 0
    masks = sorted(tmp_path.glob("mask_*.h5"))
    assert len(masks) == 6 and len(list(tmp_path.glob("prob_*.h5"))) == 6
    with h5py.File(masks[0]) as f:
        mask = f["mask"][()]
    assert mask.dtype == np.uint8 and mask.shape == (PATCH_PX, PATCH_PX)
    assert set(np.unique(mask)) <= {0, 1}


def test_rgbd_compare_scores_seeds_on_the_left_out_area_with_intervals(
    rgbd_areas: tuple[Path, Path], tmp_path: Path
) -> None:
    """The shipped comparison: trained on area A, every model and seed scored on area B
    (its test split), Table 1 as mean ± std over seeds with block-bootstrap intervals."""
    out = tmp_path / "compare"
    assert main(["compare", "--config", "configs/rgbd/compare.yaml", "--out", str(out),
                 *tiny_overrides(*rgbd_areas, prefix="base."),
                 "--set", "base.data.val_path=null", "--set", f"base.data.test_path={rgbd_areas[1]}",
                 "--set", "seeds=[0, 1]", "--set", "base.data.holdout.block_px=64",
                 "--set", "models.0.model.options.base_channels=4",
                 "--set", "models.1.model.options.base_channels=4"]) == 0
    table = json.loads((out / "table1.json").read_text())
    assert list(table["rows"]) == ["UNet", "UNet-CBAM"]
    per_seed = [json.loads((out / "runs" / "unet" / f"seed{s}" / "metrics_test.json").read_text())
                for s in (0, 1)]
    assert per_seed[0]["n_pixels"] == 6 * PATCH_PX * PATCH_PX  # area B, not area A
    dice = table["rows"]["UNet"]["dice"]
    assert dice["values"] == [m["dice"] for m in per_seed]
    assert dice["mean"] == np.mean(dice["values"])
    assert table["bootstrap"]["differences"][0]["first"] == "UNet"
    markdown = (out / "table1.md").read_text()
    assert f"{dice['mean']:.3f} ± {dice['std']:.3f}" in markdown and "F1 95 % CI" in markdown
    report = (out / "report.md").read_text()
    assert "UNet and UNet-CBAM are not separated" in report or "is ahead of" in report
