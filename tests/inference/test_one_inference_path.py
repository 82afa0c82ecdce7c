"""One inference path: the ``mask_<id>.h5`` files ``slidemap predict`` writes, scored by the
official Landslide4Sense formula, give exactly the counts ``slidemap evaluate`` reports, for
both engines and with or without post-processing; and patch masks are not post-processed
unless asked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from slidemap.cli import main

IGNORE = 255


def l4s_official_counts(predictions: Path, truths: Path) -> dict[str, float]:
    """TP, FP, FN of the landslide class summed over all labelled pixels of every patch, and
    the precision, recall and F1 of those sums: the Landslide4Sense-2022 scorer's formula,
    written here independently of slidemap (plain numpy, files read with h5py)."""
    tp = fp = fn = 0
    for truth_file in sorted(truths.glob("mask_*.h5")):
        with h5py.File(truth_file, "r") as h5:
            truth = np.asarray(h5["mask"][()])
        with h5py.File(predictions / truth_file.name, "r") as h5:
            predicted = np.asarray(h5["mask"][()])
        labelled = truth != IGNORE
        tp += int(np.sum((predicted == 1) & (truth == 1) & labelled))
        fp += int(np.sum((predicted == 1) & (truth == 0) & labelled))
        fn += int(np.sum((predicted == 0) & (truth == 1) & labelled))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


@pytest.fixture(scope="module")
def test_split(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic test split, with a band of every mask marked 255 (not labelled)."""
    split = tmp_path_factory.mktemp("one_path") / "TestData"
    shutil.copytree(synthetic_root / "TestData", split)
    for mask_file in (split / "mask").glob("mask_*.h5"):
        with h5py.File(mask_file, "r+") as h5:
            mask = np.asarray(h5["mask"][()])
            mask[:, :16] = IGNORE
            del h5["mask"]
            h5.create_dataset("mask", data=mask)
    return split


@pytest.mark.parametrize("engine", ["torch", "onnx"])
@pytest.mark.parametrize("postprocess", [False, True], ids=["thresholded", "postprocessed"])
def test_predicted_masks_score_exactly_what_evaluate_reports(
    engine: str, postprocess: bool, tiny_run, test_split: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = str(tiny_run.best_checkpoint)
    extra = ["--postprocess"] if postprocess else []
    predicted = tmp_path / "predicted"
    assert main(["predict", "--checkpoint", checkpoint, str(test_split / "img"), "--out",
                 str(predicted), "--engine", engine, *extra]) == 0
    assert main(["evaluate", "--checkpoint", checkpoint, "--data", str(test_split), "--out",
                 str(tmp_path / "eval"), "--panels", "0", "--engine", engine, *extra]) == 0
    capsys.readouterr()
    reported = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    official = l4s_official_counts(predicted, test_split / "mask")

    assert official["tp"] > 0 and official["fp"] + official["fn"] > 0  # a real test, not 0 == 0
    assert {k: reported[k] for k in ("tp", "fp", "fn")} == {k: official[k] for k in ("tp", "fp", "fn")}
    for key in ("precision", "recall", "f1"):
        assert reported[key] == pytest.approx(official[key], rel=1e-12), key
    assert reported["engine"] == engine and reported["tta"] is False
    assert bool(reported["postprocess"]) is postprocess


def test_patch_masks_are_the_thresholded_probabilities_unless_asked(
    tiny_run, test_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--checkpoint", str(tiny_run.best_checkpoint), str(test_split / "img"),
                 "--out", str(tmp_path)]) == 0
    assert "torch engine" in capsys.readouterr().out  # auto = torch for patches
    for mask_file in sorted(tmp_path.glob("mask_*.h5")):
        with h5py.File(mask_file, "r") as h5:
            mask = np.asarray(h5["mask"][()])
        with h5py.File(tmp_path / mask_file.name.replace("mask_", "prob_"), "r") as h5:
            probability = np.asarray(h5["prob"][()])
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, (probability >= tiny_run.threshold).astype(np.uint8))


def perturbed_copy(checkpoint: Path, out: Path, threshold: float, seed: int) -> Path:
    """Another member for an ensemble: ``checkpoint`` with its convolution weights jittered
    (2 % of their spread), its statistics moved and another threshold."""
    import torch

    from slidemap.data.normalization import ChannelStats
    from slidemap.io.checkpoint import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    generator = torch.Generator().manual_seed(seed)
    for value in ckpt["state_dict"].values():
        if value.is_floating_point() and value.ndim == 4:
            value += 0.02 * value.std() * torch.randn(value.shape, generator=generator)
    meta = ckpt["slidemap"]
    stats = ChannelStats.from_dict(meta["normalization"])
    meta["normalization"] = ChannelStats(stats.names, stats.mean + 0.05 * stats.std, stats.std * 1.05).to_dict()
    meta["threshold"] = threshold
    torch.save(ckpt, out)
    return out


def test_ensemble_with_tta_masks_score_exactly_what_evaluate_reports_and_calibration_is_of_them(
    tiny_run, test_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], saved_figures
) -> None:
    first = tiny_run.best_checkpoint
    second_threshold = max(tiny_run.threshold - 0.1, 0.1)
    second = perturbed_copy(first, tmp_path / "second.ckpt", second_threshold, seed=5)
    members = [str(first), str(second)]
    predicted = tmp_path / "predicted"
    assert main(["predict", "--checkpoint", *members, str(test_split / "img"), "--out", str(predicted),
                 "--tta"]) == 0
    assert "2 checkpoints, TTA" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", *members, "--data", str(test_split), "--out",
                 str(tmp_path / "eval"), "--panels", "0", "--tta"]) == 0
    capsys.readouterr()
    reported = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    official = l4s_official_counts(predicted, test_split / "mask")
    assert official["tp"] > 0 and official["fp"] + official["fn"] > 0
    assert {k: reported[k] for k in ("tp", "fp", "fn")} == {k: official[k] for k in ("tp", "fp", "fn")}
    assert reported["f1"] == pytest.approx(official["f1"], rel=1e-12)
    assert (reported["tta"], reported["ensemble_size"], reported["checkpoint"]) == (True, 2, members)
    assert reported["threshold"] == pytest.approx((tiny_run.threshold + second_threshold) / 2)
    assert reported["threshold_rule"].startswith("mean of the members' thresholds")

    # calibration is that of the probabilities predict wrote: ECE over the labelled pixels
    # in scikit-learn's 15 uniform bins (np.searchsorted on the inner edges), by hand
    probability, truth = [], []
    for mask_file in sorted((test_split / "mask").glob("mask_*.h5")):
        with h5py.File(mask_file, "r") as h5:
            labels = np.asarray(h5["mask"][()])
        with h5py.File(predicted / mask_file.name.replace("mask_", "prob_"), "r") as h5:
            probability.append(np.asarray(h5["prob"][()])[labels != IGNORE].astype(np.float64))
        truth.append(labels[labels != IGNORE])
    p, y = np.concatenate(probability), np.concatenate(truth)
    bins = np.searchsorted(np.linspace(0, 1, 16)[1:-1], p)
    gaps = [abs(y[bins == b].sum() - p[bins == b].sum()) for b in range(15)]
    assert reported["ece"] == pytest.approx(sum(gaps) / p.size, rel=1e-9)
    assert reported["calibration"]["pixels"] == np.bincount(bins, minlength=15).tolist()
    legend = saved_figures(tmp_path / "eval" / "calibration.png").axes[0].get_legend().get_texts()
    assert legend[1].get_text() == f"unet (2 checkpoints, TTA) (ECE = {reported['ece']:.3f})"
