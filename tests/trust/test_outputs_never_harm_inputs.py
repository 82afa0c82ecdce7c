"""Outputs never harm inputs: no command replaces one of its inputs, a file slidemap did not
write, or (without ``--overwrite``) its own earlier outputs; a refused command writes nothing.

Each case runs the real command and checks one stderr line naming the file, and that every
file that was there before is byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from slidemap.io.outputs import MANIFEST
from tests.trust.conftest import (
    TORCH_ENGINE,
    assert_one_line_error,
    final_files,
    make_split_folder,
    patch_image,
    patch_mask,
    run_cli,
    write_checkpoint,
    write_h5,
    write_scene,
)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links followed) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _flat_patches(folder: Path, n: int = 2) -> Path:
    for i in range(n):
        write_h5(folder / f"image_{i}.h5", {"img": patch_image(seed=i)})
        write_h5(folder / f"mask_{i}.h5", {"mask": patch_mask(seed=i)})
    return folder


@pytest.mark.parametrize("layout", ["flat folder, --out itself", "split folder, --out its mask/"])
def test_predict_into_its_own_input_folder_keeps_the_ground_truth_masks(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    if layout.startswith("flat"):
        data = _flat_patches(tmp_path / "data")
        out = data
    else:
        data = make_split_folder(tmp_path / "data", n=2)
        out = data / "mask"
    before = _snapshot(data)
    result = run_cli(capsys, ["predict", "--checkpoint", l4s_checkpoint, data, "--out", out, *TORCH_ENGINE])
    assert_one_line_error(result, "mask_0.h5", "input")
    assert _snapshot(data) == before, "the ground truth was touched"


def test_a_dem_named_like_an_output_in_out_is_never_replaced(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    out.mkdir()
    disguised = out / "probability.tif"
    os.replace(dem, disguised)
    before = _snapshot(out)
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", disguised,
                              "--out", out, "--overwrite", *TORCH_ENGINE])
    assert_one_line_error(result, "probability.tif", "input")
    assert _snapshot(out) == before


def test_a_scene_named_like_an_output_in_out_is_never_replaced(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "out")
    disguised = image.with_name("mask.tif")
    os.replace(image, disguised)
    before = _snapshot(tmp_path / "out")
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, disguised, "--dem", dem,
                              "--out", tmp_path / "out", *TORCH_ENGINE])
    assert_one_line_error(result, "mask.tif", "input")
    assert _snapshot(tmp_path / "out") == before


def test_out_as_a_symbolic_link_to_the_input_folder_is_seen_through(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _flat_patches(tmp_path / "data")
    link = tmp_path / "predictions"
    link.symlink_to(data, target_is_directory=True)
    before = _snapshot(data)
    result = run_cli(capsys, ["predict", "--checkpoint", l4s_checkpoint, data, "--out", link, *TORCH_ENGINE])
    assert_one_line_error(result, "mask_0.h5", "input")
    assert _snapshot(data) == before


def test_an_output_name_hard_linked_to_an_input_is_refused_even_with_overwrite(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    out.mkdir()
    os.link(dem, out / "probability.tif")  # the same file under an output's name
    before = dem.read_bytes()
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, "--overwrite", *TORCH_ENGINE])
    assert_one_line_error(result, "probability.tif", "input")
    assert dem.read_bytes() == before


def test_a_file_slidemap_did_not_write_is_never_replaced(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"my": "own notes"}')
    for overwrite in ([], ["--overwrite"]):
        result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                                  "--out", out, *overwrite, *TORCH_ENGINE])
        assert_one_line_error(result, "summary.json", "not written by slidemap")
        assert (out / "summary.json").read_text() == '{"my": "own notes"}'
        assert final_files(out) == ["summary.json"], "a refused run wrote outputs"


def test_a_symbolic_link_under_an_output_name_is_refused_and_its_target_kept(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    precious = tmp_path / "precious.geojson"
    precious.write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    (out / "landslides.geojson").symlink_to(precious)
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, "--overwrite", *TORCH_ENGINE])
    assert_one_line_error(result, "landslides.geojson", "symbolic link")
    assert precious.read_text() == "{}"


def test_earlier_outputs_are_replaced_only_with_overwrite_and_hand_edits_never(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem, "--out", out, *TORCH_ENGINE]
    assert run_cli(capsys, argv).code == 0
    assert json.loads((out / MANIFEST).read_text())["files"].keys() >= {"probability.tif", "summary.json"}
    first = _snapshot(out)

    again = run_cli(capsys, argv)
    assert_one_line_error(again, out.name, "earlier run", "--overwrite")
    assert _snapshot(out) == first

    replaced = run_cli(capsys, [*argv, "--overwrite", "--threshold", "0.01"])
    assert replaced.code == 0, replaced.err
    assert json.loads((out / "summary.json").read_text())["threshold"] == 0.01

    with open(out / "mask.tif.aux.xml", "a", encoding="utf-8") as fh:  # QGIS adds statistics
        fh.write("<!-- statistics -->\n")
    assert run_cli(capsys, [*argv, "--overwrite"]).code == 0, "GIS software's sidecar edit blocked"

    with open(out / "summary.json", "a", encoding="utf-8") as fh:  # a user's edit
        fh.write(" ")
    edited = (out / "summary.json").read_bytes()
    refused = run_cli(capsys, [*argv, "--overwrite"])
    assert_one_line_error(refused, "summary.json", "changed since")
    assert (out / "summary.json").read_bytes() == edited


def test_out_that_is_an_existing_file_is_one_line(
    tmp_path: Path, scene_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, dem = write_scene(tmp_path / "scene")
    out = tmp_path / "out.txt"
    out.write_text("not a folder")
    result = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                              "--out", out, *TORCH_ENGINE])
    assert_one_line_error(result, "out.txt", "not a folder")
    assert out.read_text() == "not a folder"
    below = run_cli(capsys, ["predict", "--checkpoint", scene_checkpoint, image, "--dem", dem,
                             "--out", out / "sub", *TORCH_ENGINE])
    assert_one_line_error(below, "out.txt", "a file")


def test_export_never_replaces_its_own_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = write_checkpoint(tmp_path / "model.onnx")  # a torch checkpoint, misnamed
    before = checkpoint.read_bytes()
    result = run_cli(capsys, ["export", "--checkpoint", checkpoint, "--out", checkpoint, "--overwrite"])
    assert_one_line_error(result, "model.onnx", "input")
    assert checkpoint.read_bytes() == before


def test_evaluate_never_replaces_a_foreign_metrics_file(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_split_folder(tmp_path / "data", n=2)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"f1": 0.99}')
    result = run_cli(capsys, ["evaluate", "--checkpoint", l4s_checkpoint, "--data", data,
                              "--out", out, "--overwrite"])
    assert_one_line_error(result, "metrics.json", "not written by slidemap")
    assert (out / "metrics.json").read_text() == '{"f1": 0.99}'
    assert final_files(out) == ["metrics.json"]


def test_train_never_replaces_its_own_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_split_folder(tmp_path / "data", n=2)
    run = tmp_path / "run"
    run.mkdir()
    config = run / "config.yaml"
    config.write_text(yaml.safe_dump({"name": "x", "model": {"name": "unet", "options": {"depth": 2}},
                                      "trainer": {"max_epochs": 1, "accelerator": "cpu"}}))
    before = config.read_bytes()
    result = run_cli(capsys, ["train", "--config", config, "--data", data, "--out", run])
    assert_one_line_error(result, "config.yaml", "input")
    assert config.read_bytes() == before
    assert final_files(run) == ["config.yaml"]


def test_compare_refuses_a_foreign_report_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "report.html").write_text("<p>my report</p>")
    result = run_cli(capsys, ["compare", "--config", "demo.yaml", "--data", tmp_path / "nodata",
                              "--out", out])
    assert_one_line_error(result, "report.html", "not written by slidemap")
    assert (out / "report.html").read_text() == "<p>my report</p>"
    assert final_files(out) == ["report.html"]


def test_a_copied_run_folder_resumes_from_its_own_config(
    resume_setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder copied elsewhere (new inodes, so the manifest no longer matches; or
    written by an older slidemap) resumes once its last.ckpt proves to be a slidemap
    checkpoint, and ``--config RUN/config.yaml`` is kept, not replaced."""
    import shutil

    _, data, reference = resume_setup
    run = tmp_path / "copied"
    shutil.copytree(reference, run)
    (run / MANIFEST).unlink()
    config = run / "config.yaml"
    before = config.read_bytes()
    result = run_cli(capsys, ["train", "--config", config, "--data", data, "--out", run, "--resume"])
    assert result.code == 0, result.err
    assert config.read_bytes() == before
    assert {"last.ckpt", "best.ckpt", "metrics.csv"} <= set(json.loads((run / MANIFEST).read_text())["files"])
