"""slidemap train / evaluate / compare / demo on the command line: outputs and errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from slidemap.cli import main
from slidemap.evaluation.metrics import METRIC_KEYS
from slidemap.io.checkpoint import read_checkpoint
from slidemap.training.callbacks import read_history


def _eight_views(model, image):
    """Mean probability of the 8 flips and rotations of ``image (B, C, H, W)``, mapped back."""
    import torch

    views = []
    for flip in (False, True):
        for k in range(4):
            seen = torch.rot90(image, k, dims=(2, 3))
            probability = torch.sigmoid(model(seen.flip(-1) if flip else seen).float())
            views.append(torch.rot90(probability.flip(-1) if flip else probability, -k, dims=(2, 3)))
    return torch.stack(views).mean(0)


def _pixels_of_the_split(checkpoint: Path, split_dir: Path, tta: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Patch id -> (landslide probability, mask) of every patch of a split folder, by a path
    of the test's own: masks read with h5py, the network called on the dataset's inputs
    (``tta``: averaged over the 8 flips and rotations)."""
    import torch
    from torch.utils.data import DataLoader

    from slidemap.data.datamodule import PatchDataset
    from slidemap.data.l4s import find_patches
    from slidemap.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    refs = find_patches(split_dir)
    model = loaded.model.eval()
    pixels = {}
    with torch.inference_mode():
        for batch in DataLoader(PatchDataset(refs, loaded.pipeline, stats=loaded.stats), batch_size=8):
            image = batch["image"]
            probability = (_eight_views(model, image) if tta else torch.sigmoid(model(image).float()))
            probability = probability.squeeze(1).numpy()
            for patch_id, patch_probability in zip(batch["id"], probability, strict=True):
                with h5py.File(split_dir / "mask" / f"mask_{patch_id}.h5") as h5:
                    pixels[patch_id] = (patch_probability, h5["mask"][()])
    return pixels


def test_evaluate_writes_the_metrics_and_figures_of_its_pixels(
    tiny_run, synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], saved_figures
) -> None:
    pixels = _pixels_of_the_split(tiny_run.best_checkpoint, synthetic_root / "TestData")
    probability = np.concatenate([p.ravel() for p, _ in pixels.values()])
    truth = np.concatenate([m.ravel() for _, m in pixels.values()]).astype(np.int64)
    assert set(np.unique(truth)) == {0, 1}
    # a threshold near the checkpoint's in the middle of the widest gap between the
    # probabilities, so that the counts are exact whichever (equally right) inference
    # arithmetic produced them
    around = np.unique(probability[np.abs(probability - tiny_run.threshold) < 0.05].astype(np.float64))
    widest = int(np.argmax(np.diff(around)))
    threshold = float(np.round((around[widest] + around[widest + 1]) / 2, 7))
    assert np.abs(probability - threshold).min() > 1e-5
    out = tmp_path / "eval"
    status = main(["evaluate", "--checkpoint", str(tiny_run.best_checkpoint), "--data",
                   str(synthetic_root), "--split", "test", "--out", str(out), "--panels", "2",
                   "--threshold", str(threshold)])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics)[: len(METRIC_KEYS)] == list(METRIC_KEYS)
    assert metrics["threshold"] == threshold
    # then how the numbers were made: the engine auto chose for patches, no TTA, no cleaning
    assert (metrics["engine"], metrics["tta"], metrics["postprocess"]) == ("torch", False, False)
    assert metrics["inference_precision"] == "fp32"
    assert metrics["checkpoint"] == str(tiny_run.best_checkpoint)

    # every score against scikit-learn on the same pixels
    predicted = (probability >= threshold).astype(np.int64)
    tn, fp, fn, tp = skm.confusion_matrix(truth, predicted, labels=[0, 1]).ravel()
    assert (metrics["tp"], metrics["fp"], metrics["fn"], metrics["tn"]) == (tp, fp, fn, tn)
    assert metrics["n_pixels"] == truth.size == 7 * 128 * 128
    expected = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(truth, predicted, zero_division=0),
        "recall": skm.recall_score(truth, predicted, zero_division=0),
        "specificity": skm.recall_score(truth, predicted, pos_label=0, zero_division=0),
        "f1": skm.f1_score(truth, predicted, zero_division=0),
        "dice": skm.f1_score(truth, predicted, zero_division=0),
        "iou": skm.jaccard_score(truth, predicted, zero_division=0),
        "balanced_accuracy": skm.balanced_accuracy_score(truth, predicted),
        "mcc": skm.matthews_corrcoef(truth, predicted),
    }
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    assert 0.2 < metrics["f1"] < 1.0  # a model that learnt something, not a degenerate case
    # binned AUCs: within the documented 1e-3 of the exact values
    assert metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, probability), abs=1e-3)
    assert metrics["pr_auc"] == pytest.approx(skm.average_precision_score(truth, probability), abs=1e-3)

    # the figures show these numbers
    roc = saved_figures(out / "roc.png").axes[0]
    assert roc.get_xlabel() == "False positive rate"
    assert [t.get_text() for t in roc.get_legend().get_texts()] == [
        f"unet (AUC = {metrics['roc_auc']:.3f})", "chance"]
    # the operating point is drawn at the curve's bin edge nearest the threshold (1000 bins)
    (marker,) = [line for line in roc.lines if line.get_label() == "_operating_point"]
    at_edge = probability >= round(threshold * 1000) / 1000
    for rate, label in ((marker.get_xdata()[0], 0), (marker.get_ydata()[0], 1)):  # ±1 pixel
        assert rate == pytest.approx(at_edge[truth == label].mean(), abs=1.01 / (truth == label).sum())
    pr = saved_figures(out / "pr.png").axes[0]
    assert f"unet (AP = {metrics['pr_auc']:.3f})" in [t.get_text() for t in pr.get_legend().get_texts()]
    (chance,) = [line for line in pr.lines if line.get_label() == "chance"]
    assert chance.get_ydata()[0] == pytest.approx(truth.mean())
    confusion = saved_figures(out / "confusion.png").axes[0]
    cells = sorted(text.get_text().split("\n")[:2] for text in confusion.texts)
    assert cells == sorted([["TN", f"{tn:,}"], ["FP", f"{fp:,}"], ["FN", f"{fn:,}"], ["TP", f"{tp:,}"]])

    # calibration of the same pixels: scikit-learn's 15 uniform bins, weighted by their pixels
    prob_true, prob_pred = calibration_curve(truth, probability, n_bins=15, strategy="uniform")
    pixels_per_bin = np.bincount(np.searchsorted(np.linspace(0, 1, 16)[1:-1], probability), minlength=15)
    weights = pixels_per_bin[pixels_per_bin > 0] / truth.size
    assert metrics["ece"] == pytest.approx(float(np.sum(weights * np.abs(prob_true - prob_pred))), abs=1e-4)
    assert metrics["ece"] > 1e-3 and metrics["calibration"]["bins"] == 15
    assert metrics["calibration"]["pixels"] == pytest.approx(pixels_per_bin.tolist(), abs=2)
    reliability = saved_figures(out / "calibration.png").axes[0]
    assert [t.get_text() for t in reliability.get_legend().get_texts()] == [
        "perfect calibration", f"unet (ECE = {metrics['ece']:.3f})"]
    (points,) = [line for line in reliability.lines if line.get_label().startswith("unet")]
    np.testing.assert_allclose(points.get_xdata(), prob_pred, atol=1e-4)
    np.testing.assert_allclose(points.get_ydata(), prob_true, atol=1e-3)
    # panels: the two patches with the most landslide pixels, outcomes of their pixels
    from slidemap.plots.panels import FN, FP, TN, TP

    by_landslide = sorted(pixels, key=lambda i: (-int((pixels[i][1] == 1).sum()), int(i)))[:2]
    panels = saved_figures(out / "panels.png")
    assert len(panels.axes) == 2 * 3
    assert [ax.get_title() for ax in panels.axes[:3]] == ["Image", "Ground truth", "unet"]
    for row, patch_id in enumerate(by_landslide):
        assert panels.axes[3 * row].get_ylabel() == patch_id
        patch_probability, mask = pixels[patch_id]
        hit = patch_probability >= threshold
        codes = np.select([hit & (mask == 1), hit & (mask == 0), ~hit & (mask == 1)], [TP, FP, FN], TN)
        np.testing.assert_array_equal(panels.axes[3 * row + 2].images[0].get_array(), codes)
    assert f"F1 {metrics['f1']:.4f}" in capsys.readouterr().out


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
    synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], saved_figures,
    html_table,
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
        "tta": True,  # every model scored with test-time augmentation
    }))
    out = tmp_path / "cmp"
    assert main(["compare", "--config", str(compare), "--data", str(synthetic_root),
                 "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    rows = json.loads((out / "table1.json").read_text())["rows"]
    assert list(rows) == ["UNet", "UNet-CBAM"]
    for name, folder in (("UNet", "unet"), ("UNet-CBAM", "unet-cbam")):
        run = out / "runs" / folder
        meta = read_checkpoint(run / "best.ckpt")["slidemap"]
        assert meta["model"]["name"] == {"UNet": "unet", "UNet-CBAM": "unet_cbam"}[name]
        assert rows[name]["threshold"] == meta["threshold"]  # its own validation threshold
        run_metrics = json.loads((run / "metrics_test.json").read_text())
        assert rows[name] == {key: run_metrics[key] for key in (*METRIC_KEYS, "ece")}
        assert run_metrics["tta"] is True
        # the row is this model's score on the test pixels (rows not swapped, right split),
        # averaged over the 8 flips and rotations of each patch
        pixels = _pixels_of_the_split(run / "best.ckpt", synthetic_root / "TestData", tta=True)
        truth = np.concatenate([m.ravel() for _, m in pixels.values()])
        probability = np.concatenate([p.ravel() for p, _ in pixels.values()])
        predicted = probability >= meta["threshold"]
        assert rows[name]["n_pixels"] == truth.size
        # a pixel within 1e-5 of the threshold may fall either way (inference arithmetic)
        near = int((np.abs(probability - meta["threshold"]) < 1e-5).sum())
        union = int((predicted | (truth == 1)).sum())
        assert rows[name]["iou"] == pytest.approx(
            skm.jaccard_score(truth, predicted, zero_division=0), abs=1e-12 + 2 * near / max(union, 1))

    # figures and report show the table's numbers
    legend = [t.get_text() for t in saved_figures(out / "roc.png").axes[0].get_legend().get_texts()]
    assert legend == [f"{n} (AUC = {rows[n]['roc_auc']:.3f})" for n in rows] + ["chance"]
    reliability = saved_figures(out / "calibration.png").axes[0]
    assert [t.get_text() for t in reliability.get_legend().get_texts()][1:] == [
        f"{n} (ECE = {rows[n]['ece']:.3f})" for n in rows]
    confusion = saved_figures(out / "confusion.png").axes
    assert [ax.get_title() for ax in confusion[:2]] == ["(a) UNet", "(b) UNet-CBAM"]
    for ax, name in zip(confusion, rows, strict=False):
        assert any(t.get_text().startswith(f"TP\n{rows[name]['tp']:,}\n") for t in ax.texts)
    curves = saved_figures(out / "curves.png").axes
    assert [ax.get_title() for ax in curves] == ["(a) Loss", "(b) Precision", "(c) Recall", "(d) F1 score"]
    val_f1 = next(line for line in curves[3].lines if line.get_label() == "UNet-CBAM val")
    history = read_history(out / "runs" / "unet-cbam" / "metrics.csv")
    np.testing.assert_allclose(val_f1.get_ydata(), [r["val_f1"] for r in history])
    panels = saved_figures(out / "panels.png")
    assert [ax.get_title() for ax in panels.axes[:4]] == ["Image", "Ground truth", "UNet", "UNet-CBAM"]
    activations = saved_figures(out / "activations.png")
    assert "layer 'UNet-CBAM: encoder.1' (8 of 16 channels)" in activations.get_suptitle()
    assert len(activations.axes) == 8
    features = saved_figures(out / "features.png")
    assert features.get_suptitle() == f"patch {panels.axes[0].get_ylabel()}"
    page = (out / "report.html").read_text()
    table = html_table(page)
    for name in rows:
        assert table[name]["IoU"][0] == f"{rows[name]['iou']:.3f}"
        assert table[name]["ROC-AUC"][0] == f"{rows[name]['roc_auc']:.3f}"
    figure_files = ["curves.png", "roc.png", "pr.png", "confusion.png", "calibration.png",
                    "panels.png", "features.png", "activations.png"]
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(data) for data in embedded] == [
        (out / name).read_bytes() for name in figure_files]
    report = (out / "report.md").read_text()
    n_pixels = rows["UNet"]["n_pixels"]
    assert "**Table 1.** Every model on the test split" in report and f"{n_pixels:,}" in report
    assert "These data are synthetic" in report  # synthetic_root carries synthetic.json
    assert "averaged over the 8 flips and 90° rotations" in report
    assert f"Expected calibration error (15 bins): UNet {rows['UNet']['ece']:.4f}" in report
    seed = yaml.safe_load((out / "runs" / "unet" / "config.yaml").read_text())["trainer"]["seed"]
    for cell in ("runs/unet/config.yaml", "runs/unet-cbam/config.yaml", f"| {seed} |"):
        assert cell in report
