"""Resources: a size a file declares (an ``.h5`` array, a raster's width or block, an ONNX
model's weights) is checked against the memory budget before anything is allocated, and a
Dask scheduler that cannot be reached is one line after a short, configurable timeout."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
import rasterio
from onnx import TensorProto, helper
from rasterio.transform import from_origin

from slidemap.errors import ConfigError
from slidemap.io.resources import BUDGET_ENV, memory_budget_bytes, parse_bytes
from tests.trust.conftest import (
    UTM,
    assert_no_output,
    assert_one_line_error,
    make_split_folder,
    run_cli,
    scene_dem,
    set_tiff_tag,
    write_raster,
    write_scene,
)


def _declared_h5(path: Path, key: str, shape: tuple[int, ...], dtype: str = "f8") -> Path:
    """An HDF5 file declaring a huge dataset without storing it (chunks never written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset(key, shape=shape, dtype=dtype, chunks=tuple(min(n, 64) for n in shape))
    return path


def test_an_h5_declaring_a_200000_squared_image_is_refused_before_reading(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = _declared_h5(tmp_path / "data" / "image_1.h5", "img", (200_000, 200_000, 14))
    assert patch.stat().st_size < 100_000
    result = run_cli(capsys, ["features", patch, "--out", tmp_path / "fig.png"])
    assert_one_line_error(result, "image_1.h5", "memory budget")
    predicted = run_cli(capsys, ["predict", "--checkpoint", l4s_checkpoint, patch, "--out",
                                 tmp_path / "out", "--engine", "torch"])
    assert_one_line_error(predicted, "image_1.h5", "memory budget")
    assert_no_output(tmp_path / "out")


def test_a_mask_declaring_a_huge_array_is_refused(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_split_folder(tmp_path / "data", n=1)
    _declared_h5(data / "mask" / "mask_0.h5", "mask", (300_000, 300_000), "u1")
    result = run_cli(capsys, ["evaluate", "--checkpoint", l4s_checkpoint, "--data", data,
                              "--out", tmp_path / "eval"])
    assert_one_line_error(result, "mask_0.h5", "memory budget")


def test_a_raster_declaring_ten_million_columns_is_refused_before_mapping(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A VRT 10⁷ px wide (1 m pixels at 40° N) opens in milliseconds; its strips would need
    terabytes."""
    vrt = tmp_path / "huge.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="10000000" rasterYSize="2000"><SRS>EPSG:4326</SRS>'
        "<GeoTransform>-40, 0.00001, 0, 40.01, 0, -0.00001</GeoTransform>"
        '<VRTRasterBand dataType="UInt16" band="1"><Description>B4</Description></VRTRasterBand>'
        '<VRTRasterBand dataType="UInt16" band="2"><Description>B8</Description></VRTRasterBand>'
        "</VRTDataset>")
    dem = write_raster(tmp_path / "dem.tif", scene_dem(), crs="EPSG:4326", origin=(10.0, 40.005),
                       res=1e-4)
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, vrt, "--dem", dem,
                              "--out", out, "--engine", "torch"])
    assert_one_line_error(result, "huge.vrt", "memory budget")
    assert_no_output(out)


def test_a_geotiff_header_declaring_a_giant_block_is_refused(
    tmp_path: Path, scene_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "image.tif"
    with rasterio.open(image, "w", driver="GTiff", width=64, height=64, count=2, dtype="uint16",
                       crs=UTM, transform=from_origin(500_000, 4_200_000, 10, 10), tiled=True,
                       blockxsize=16, blockysize=16) as dst:
        dst.write(np.full((2, 64, 64), 1000, np.uint16))
        dst.descriptions = ("B4", "B8")
    for tag in (322, 323):  # TileWidth, TileLength: 65520 px each, 8.6 GB per block
        set_tiff_tag(image, tag, 65520)
    monkeypatch.setenv(BUDGET_ENV, "1GB")
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem",
                              write_raster(tmp_path / "dem.tif", scene_dem()), "--out", tmp_path / "out"])
    assert_one_line_error(result, "image.tif", "block", "memory budget")


def _declared_tensor(dims: list[int]) -> onnx.TensorProto:
    """A float tensor declaring ``dims`` and holding no data (a few bytes on disk)."""
    tensor = TensorProto()
    tensor.name, tensor.data_type = "w", TensorProto.FLOAT
    tensor.dims.extend(dims)
    return tensor


def _onnx_with(tmp_path: Path, initializer: onnx.TensorProto) -> Path:
    node = helper.make_node("Identity", ["input"], ["logits"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
                              initializer=[initializer])
    model = helper.make_model(graph)
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    return path


def test_an_onnx_model_declaring_huge_weights_is_refused_before_onnxruntime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _onnx_with(tmp_path, _declared_tensor([200_000, 200_000]))
    data = make_split_folder(tmp_path / "data", n=1)
    result = run_cli(capsys, ["predict", "--checkpoint", path, data, "--out", tmp_path / "out"])
    assert_one_line_error(result, "model.onnx", "memory budget")


def test_an_onnx_model_reading_external_files_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weight = _declared_tensor([4])
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    path = _onnx_with(tmp_path, weight)
    data = make_split_folder(tmp_path / "data", n=1)
    result = run_cli(capsys, ["predict", "--checkpoint", path, data, "--out", tmp_path / "out"])
    assert_one_line_error(result, "model.onnx", "external data")


def test_an_unreachable_dask_scheduler_is_one_line_after_the_timeout(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    started = time.perf_counter()
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, "--engine", "torch", "--scheduler",
                              f"tcp://127.0.0.1:{port}", "--scheduler-timeout", "1"])
    assert time.perf_counter() - started < 25
    assert result.code != 0 and "Traceback" not in result.err
    line = result.err.strip().splitlines()[-1]
    assert f"tcp://127.0.0.1:{port}" in line and "within 1 s" in line, line
    assert_no_output(out)


def test_the_memory_budget_is_configurable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_bytes("512MiB") == 512 * 2**20 and parse_bytes("8GB") == 8 * 10**9
    monkeypatch.setenv(BUDGET_ENV, "2GB")
    assert memory_budget_bytes() == 2 * 10**9
    for bad in ("lots", "-1GB", "0", "1e400"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ConfigError, match=BUDGET_ENV):
            memory_budget_bytes()
