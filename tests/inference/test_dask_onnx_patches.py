"""Dask tiles equal the single-process run; ONNX equals torch; .h5 patches in the official format;
the ``predict`` and ``export`` commands."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import rasterio

from slidemap.cli import main
from slidemap.inference.engine import EngineSpec, TorchEngine
from slidemap.inference.mapping import MappingOptions, predict_scene
from slidemap.inference.onnx_export import OnnxEngine, export_onnx
from slidemap.inference.scene import SceneSpec
from slidemap.io.atomic import TMP_PREFIX


def read_band(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_dask_with_two_workers_gives_the_single_process_output(tiny_checkpoint, make_scene, tmp_path) -> None:
    # Threads (processes=False) keep the test fast; the task code path (checkpoint path +
    # window in, WindowResult out, results blended in plan order) is the one processes run.
    paths = make_scene(size=72)
    scene = SceneSpec(paths["image"], paths["dem"])
    spec = EngineSpec(tiny_checkpoint)
    options = MappingOptions(window=32, overlap=16, threshold=0.45)
    single = predict_scene(spec, scene, tmp_path / "single", options)
    dask_options = MappingOptions(window=32, overlap=16, threshold=0.45, workers=2, dask_processes=False)
    distributed = predict_scene(spec, scene, tmp_path / "dask", dask_options)
    for name in ("probability.tif", "mask.tif"):
        np.testing.assert_array_equal(read_band(tmp_path / "single" / name), read_band(tmp_path / "dask" / name))
    assert single["count"] == distributed["count"] and single["total_area_m2"] == distributed["total_area_m2"]


def _refuse_in_this_process(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a window was predicted in the test's process, not in a Dask worker")


@pytest.mark.slow
def test_cli_process_workers_with_the_onnx_engine_give_the_single_process_output(
        tiny_checkpoint, make_scene, tmp_path, monkeypatch) -> None:
    # ``--workers 2``: a LocalCluster of worker processes, each exporting the checkpoint to
    # ONNX itself (the CLI's default engine); the driver blends their windows in plan order.
    paths = make_scene(size=72)
    common = ["predict", "--checkpoint", str(tiny_checkpoint), str(paths["image"]), "--dem",
              str(paths["dem"]), "--window", "32", "--overlap", "16", "--engine", "onnx",
              "--threshold", "0.435", "--min-area", "0"]  # about the median probability
    assert main([*common, "--out", str(tmp_path / "single")]) == 0
    # from here on, a window predicted in this process fails the test: the workers are
    # separate processes that import slidemap afresh
    monkeypatch.setattr(OnnxEngine, "predict_logits", _refuse_in_this_process)
    assert main([*common, "--workers", "2", "--out", str(tmp_path / "workers")]) == 0
    for name in ("probability.tif", "mask.tif"):
        np.testing.assert_array_equal(read_band(tmp_path / "workers" / name),
                                      read_band(tmp_path / "single" / name))
    mask = read_band(tmp_path / "single" / "mask.tif")
    assert 0 < mask.mean() < 1  # both classes: the comparison says something
    single, workers = (json.loads((tmp_path / run / "summary.json").read_text())
                       for run in ("single", "workers"))
    assert single["count"] == workers["count"] > 0
    assert single["total_area_m2"] == workers["total_area_m2"]
    assert workers["dask"]["workers"] == 2


def test_onnx_probabilities_match_torch(tiny_checkpoint, tmp_path) -> None:
    out = export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    onnx_engine = OnnxEngine.from_file(out)
    torch_engine = TorchEngine.from_checkpoint(tiny_checkpoint)
    assert onnx_engine.pipeline == torch_engine.pipeline and onnx_engine.stats == torch_engine.stats
    assert onnx_engine.threshold == torch_engine.threshold and onnx_engine.model_name == "unet"
    batch = np.random.default_rng(0).normal(size=(3, torch_engine.pipeline.in_channels, 36, 52))
    batch = batch.astype(np.float32)  # 36 is not a multiple of 4: padded like the torch model
    p_torch = 1 / (1 + np.exp(-torch_engine.predict_logits(batch)))
    p_onnx = 1 / (1 + np.exp(-onnx_engine.predict_logits(batch)))
    assert p_onnx.shape == (3, 1, 36, 52)
    assert np.abs(p_onnx - p_torch).max() < 1e-4


@pytest.mark.parametrize("name", ["unet", "unet_cbam", "segnet", "dpfcn"])
def test_every_model_exports_to_onnx_with_dynamic_size_and_matches_torch(name) -> None:
    import torch

    from slidemap.data.normalization import ChannelStats
    from slidemap.features import InputPipeline
    from slidemap.inference.onnx_export import export_bytes
    from slidemap.models import build_model

    pipeline = InputPipeline("l4s14", features=())
    stats = ChannelStats(pipeline.channel_names, np.zeros(pipeline.in_channels), np.ones(pipeline.in_channels))
    torch.manual_seed(0)
    model = build_model(name, pipeline.in_channels, base_channels=4, depth=3).eval()
    torch_engine = TorchEngine(model, pipeline, stats, 0.5, name)
    onnx_engine = OnnxEngine(export_bytes(torch_engine))  # traced at 2 x size_multiple
    rng = np.random.default_rng(1)
    for height, width in ((40, 72), (100, 36)):  # other sizes than traced, not multiples of 8
        batch = rng.normal(size=(2, pipeline.in_channels, height, width)).astype(np.float32)
        logits = onnx_engine.predict_logits(batch)
        assert logits.shape == (2, 1, height, width)
        np.testing.assert_allclose(logits, torch_engine.predict_logits(batch), atol=1e-4)


def test_dpfcn_bin_pooling_equals_adaptive_average_pooling() -> None:
    import torch
    import torch.nn.functional as F

    from slidemap.models.dpfcn import BinAveragePool

    x = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    for bins in (1, 2, 4, 8):
        torch.testing.assert_close(BinAveragePool(bins)(x), F.adaptive_avg_pool2d(x, bins))
    odd = torch.randn(1, 2, 7, 9, dtype=torch.float64)  # not divisible: adaptive pooling's bins
    torch.testing.assert_close(BinAveragePool(4)(odd), F.adaptive_avg_pool2d(odd, 4))


def write_patch(path, rng, n_bands=4, size=32) -> None:
    image = np.stack([rng.uniform(0.5, 1.5, (size, size)) for _ in range(n_bands)], axis=-1)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("img", data=image)


def test_predict_command_writes_official_patch_format(tiny_checkpoint, tmp_path) -> None:
    img = tmp_path / "TestData" / "img"
    img.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for pid in ("1", "2", "10"):
        write_patch(img / f"image_{pid}.h5", rng)
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), str(tmp_path / "TestData"),
                 "--out", str(out), "--threshold", "0.45", "--no-postprocess"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [f"{kind}_{pid}.h5" for kind in ("mask", "prob") for pid in ("1", "2", "10")])
    with h5py.File(out / "mask_10.h5") as mask_file, h5py.File(out / "prob_10.h5") as prob_file:
        mask, prob = mask_file["mask"][()], prob_file["prob"][()]
    assert mask.dtype == np.uint8 and mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1}
    assert prob.dtype == np.float32
    np.testing.assert_array_equal(mask, (prob >= 0.45).astype(np.uint8))


def test_predict_and_export_commands_on_a_scene(tiny_checkpoint, make_scene, tmp_path, capsys) -> None:
    paths = make_scene(size=48)
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(onnx_path)]) == 0
    out = tmp_path / "scene"
    assert main(["predict", "--checkpoint", str(onnx_path), "--engine", "onnx", str(paths["image"]),
                 "--dem", str(paths["dem"]), "--out", str(out), "--window", "32", "--overlap", "16",
                 "--bands", "B4=1,B8=2", "--min-area", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "unet" and summary["inputs"]["dem"] == str(paths["dem"])
    assert not list(out.glob(f"{TMP_PREFIX}*"))
    code = main(["predict", "--checkpoint", str(tiny_checkpoint), str(paths["image"]),
                 "--out", str(tmp_path / "scene2")])
    assert code != 0
    assert "image.tif: cannot find band(s) slope, DEM" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["garbage.tif"])
def test_unreadable_scene_is_one_line_error(tiny_checkpoint, tmp_path, capsys, bad) -> None:
    (tmp_path / bad).write_bytes(b"nope")
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), str(tmp_path / bad), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and bad in err


def test_export_failure_is_one_line_naming_the_checkpoint(tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    from slidemap.inference import onnx_export

    def unsupported(*_args: object) -> None:
        raise RuntimeError("Unsupported: ONNX export of operator frobnicate\nlong details")

    monkeypatch.setattr(onnx_export, "_trace", unsupported)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tiny_checkpoint) in err
    assert "cannot be exported to ONNX" in err and "frobnicate" in err and "--engine torch" in err
    assert not out.exists() and not list(tmp_path.glob(f"{TMP_PREFIX}*"))
