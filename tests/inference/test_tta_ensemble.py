"""Test-time augmentation and ensembles: the predictor's mean and standard deviation against
the members run one by one (numpy transforms written here), the ensemble's checks, and the
scene outputs they add (``uncertainty.tif``, ``mean_uncertainty``), on every path a scene
takes (in process, ONNX Runtime, Dask worker processes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
from mapping_helpers import tiny_pipeline, tiny_stats, write_checkpoint
from rio_cogeo.cogeo import cog_validate

from slidemap.bands import BandSet
from slidemap.cli import main
from slidemap.data.normalization import ChannelStats
from slidemap.errors import CheckpointError
from slidemap.features import InputPipeline
from slidemap.inference.engine import EngineSpec, TorchEngine, load_engine, sigmoid
from slidemap.inference.mapping import MappingOptions, predict_scene
from slidemap.inference.predictor import Predictor, build_predictor, load_predictor, predictor_spec
from slidemap.inference.scene import SceneSpec
from slidemap.io.vector import read_polygons


def dihedral(array: np.ndarray, quarter_turns: int, flip: bool) -> np.ndarray:
    """Rotate the last two axes by ``quarter_turns`` × 90° counter-clockwise, then mirror."""
    out = np.rot90(array, quarter_turns, axes=(-2, -1))
    return out[..., ::-1] if flip else out


def undo(array: np.ndarray, quarter_turns: int, flip: bool) -> np.ndarray:
    return np.rot90(array[..., ::-1] if flip else array, -quarter_turns, axes=(-2, -1))


def eight_views(engine, inputs: np.ndarray) -> np.ndarray:
    """``(8, B, H, W)``: the engine's probabilities of the 8 views of ``inputs``, mapped back."""
    return np.stack([
        undo(sigmoid(engine.predict_logits(np.ascontiguousarray(dihedral(inputs, k, flip))))[:, 0], k, flip)
        for flip in (False, True) for k in range(4)])


def other_stats(pipeline: InputPipeline) -> ChannelStats:
    n = pipeline.in_channels
    return ChannelStats(pipeline.channel_names, np.linspace(0.2, 0.9, n), np.linspace(1.0, 3.0, n))


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two checkpoints of the tiny pipeline: other weights, statistics and thresholds."""
    folder = tmp_path_factory.mktemp("members")
    return [write_checkpoint(folder / "a.ckpt", 0.4, seed=1),
            write_checkpoint(folder / "b.ckpt", 0.6, seed=2, stats=other_stats(tiny_pipeline()))]


def tiny_bands(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A ``(4, H, W)`` band stack of the tiny band set, in stored units."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0.2, 3, (height, width)), rng.uniform(0.5, 4, (height, width)),
                     rng.uniform(0, 2, (height, width)), rng.uniform(0.7, 1.3, (height, width))]
                    ).astype(np.float32)


# ------------------------------------------------------------------------ the predictor
@pytest.mark.parametrize("kind", ["torch", "onnx"])
def test_tta_is_the_mean_of_the_eight_views_mapped_back_on_non_square_input(
    kind: str, tiny_checkpoint: Path
) -> None:
    engine = load_engine(EngineSpec(tiny_checkpoint, kind))
    predictor = Predictor(engine, kind, tiny_checkpoint, tta=True)
    inputs = np.stack([predictor.prepare(tiny_bands(38, 21, seed)) for seed in (1, 2)])  # not multiples of 4
    views = eight_views(engine, inputs)
    prediction = predictor.predict(inputs)
    assert prediction.probability.shape == prediction.uncertainty.shape == (2, 38, 21)
    assert views.std(axis=0).max() > 1e-3  # the views disagree: the average is not trivial
    np.testing.assert_allclose(prediction.probability, views.mean(axis=0), atol=2e-7)
    np.testing.assert_allclose(prediction.uncertainty, views.std(axis=0), atol=2e-7)
    assert predictor.n_members == 8 and predictor.record()["tta"] is True


def test_tta_prediction_turns_with_its_input(tiny_engine: TorchEngine) -> None:
    predictor = Predictor(tiny_engine, tta=True)
    inputs = predictor.prepare(tiny_bands(32, 24, 3))[None]
    base = predictor.predict(inputs)
    for flip in (False, True):
        for k in range(4):
            turned = predictor.predict(np.ascontiguousarray(dihedral(inputs, k, flip)))
            np.testing.assert_allclose(turned.probability, dihedral(base.probability, k, flip), atol=2e-6)
            np.testing.assert_allclose(turned.uncertainty, dihedral(base.uncertainty, k, flip), atol=2e-6)


def test_ensemble_averages_members_each_normalised_with_its_own_statistics(members: list[Path]) -> None:
    ensemble = load_predictor(members, "torch", tta=True)
    singles = [load_predictor(path, "torch", tta=True) for path in members]
    bands = tiny_bands(40, 40, 5)
    prediction = ensemble.predict(ensemble.prepare(bands)[None])
    each = [single.probabilities(single.prepare(bands)[None]) for single in singles]
    assert ensemble.input_channels == 2 * ensemble.pipeline.in_channels  # one block per statistics
    np.testing.assert_allclose(prediction.probability, (each[0] + each[1]) / 2, atol=2e-7)
    # 16 members: 8 views of each checkpoint; their spread from the singles' own numbers
    views = np.concatenate([eight_views(single.engine, single.prepare(bands)[None]) for single in singles])
    np.testing.assert_allclose(prediction.uncertainty, views.std(axis=0), atol=2e-7)
    assert ensemble.threshold == pytest.approx(0.5)  # mean of 0.4 and 0.6
    assert ensemble.threshold_rule() == "mean of the members' thresholds (0.4, 0.6)"
    assert ensemble.threshold_rule(0.3) == "given"
    assert ensemble.record() == {"engine": "torch", "inference_precision": "fp32", "tta": True, "ensemble_size": 2,
                                 "checkpoint": [str(p) for p in members]}


def test_one_checkpoint_without_tta_has_one_member_and_no_uncertainty(tiny_checkpoint: Path) -> None:
    predictor = load_predictor([tiny_checkpoint], "torch")
    inputs = predictor.prepare(tiny_bands(16, 16))[None]
    prediction = predictor.predict(inputs)
    assert predictor.n_members == 1 and not predictor.has_uncertainty
    assert prediction.uncertainty is None
    np.testing.assert_array_equal(prediction.probability,
                                  sigmoid(predictor.engine.predict_logits(inputs))[:, 0])
    assert predictor.record() == {"engine": "torch", "inference_precision": "fp32", "tta": False, "ensemble_size": 1,
                                  "checkpoint": str(tiny_checkpoint)}


def _changed_pipeline(change: str) -> InputPipeline:
    pipeline = tiny_pipeline()
    data = pipeline.to_dict()
    if change == "features":
        data["features"] = ["ndvi"]
    elif change == "pixel size":
        data["pixel_size_m"] = 20.0
    else:  # another band set: the same bands under another name and scale
        bands = data["band_set"]
        bands["name"] = "tiny4b"
        bands["bands"][0]["physical_per_unit"] = 0.1
        data["band_set"] = BandSet.from_dict(bands).to_dict()
    return InputPipeline.from_dict(data)


@pytest.mark.parametrize(("change", "difference"), [
    ("features", "features: ['ndvi', 'slope'] vs ['ndvi']"),
    ("pixel size", "pixel_size_m: 10.0 vs 20.0"),
    ("band set", "band_set.name: 'tiny4' vs 'tiny4b'"),
])
def test_an_ensemble_of_different_pipelines_is_refused_naming_both_files(
    change: str, difference: str, members: list[Path], make_scene, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pipeline = _changed_pipeline(change)
    odd = write_checkpoint(tmp_path / "odd.ckpt", pipeline=pipeline, stats=tiny_stats(pipeline))
    with pytest.raises(CheckpointError) as error:
        load_predictor([members[0], odd], "torch")
    assert str(error.value).startswith(f"{odd}: cannot be averaged with {members[0]}")
    assert difference in str(error.value)
    scene = make_scene(size=48)
    assert main(["predict", "--checkpoint", str(members[0]), str(odd), str(scene["image"]),
                 "--dem", str(scene["dem"]), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(odd) in err[0] and str(members[0]) in err[0] and difference in err[0]
    assert not (tmp_path / "out").exists()  # refused before anything is read or written


def test_a_checkpoint_given_twice_is_refused(members: list[Path]) -> None:
    with pytest.raises(CheckpointError, match="given twice"):
        predictor_spec([members[0], members[1], members[0].parent / ".." / members[0].parent.name / "a.ckpt"])


def test_predict_tells_checkpoints_from_inputs_and_needs_an_input(
    members: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slidemap.cli._runtime import split_checkpoints

    url = "https://example.org/items/S2B.json"
    assert split_checkpoints([str(members[0]), "b.onnx", "scene.tif", url]) == (
        [members[0], Path("b.onnx")], ["scene.tif", url])  # a URL stays as given
    assert split_checkpoints(["model.pt", "scene.tif"]) == ([Path("model.pt")], ["scene.tif"])
    assert main(["predict", "--checkpoint", str(members[0]), str(members[1]), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give at least one INPUT" in err[0]


# --------------------------------------------------------------------------------- scenes
def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_scene_ensemble_maps_the_mean_and_its_spread_and_polygons_carry_it(
    members: list[Path], make_scene, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = make_scene(size=96, nodata_box=(slice(0, 20), slice(0, 30)))
    common = [str(scene["image"]), "--dem", str(scene["dem"]), "--engine", "torch"]
    singles = []
    for path in members:
        out = tmp_path / path.stem
        assert main(["predict", "--checkpoint", str(path), *common, "--out", str(out)]) == 0
        assert not (out / "uncertainty.tif").exists()  # one member: no uncertainty
        singles.append(read_band(out / "probability.tif"))
    mean = (singles[0] + singles[1]) / 2
    threshold = float(np.nanquantile(mean, 0.7))
    out = tmp_path / "ensemble"
    assert main(["predict", "--checkpoint", str(members[0]), str(members[1]), *common, "--out", str(out),
                 "--threshold", str(threshold), "--no-postprocess"]) == 0
    assert "2 checkpoints" in capsys.readouterr().out
    probability, uncertainty = read_band(out / "probability.tif"), read_band(out / "uncertainty.tif")
    np.testing.assert_allclose(probability, mean, atol=1e-6)  # NaN where the singles have NaN
    # one window covers this scene: the spread of two members is |p1 - p2| / 2, exactly
    np.testing.assert_allclose(uncertainty, np.abs(singles[0] - singles[1]) / 2, atol=1e-6)
    assert np.isnan(uncertainty[:20, :30]).all() and np.isfinite(uncertainty[30:, 40:]).all()
    assert cog_validate(out / "uncertainty.tif", strict=True, quiet=True) == (True, [], [])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["uncertainty"] == "uncertainty.tif"
    assert summary["checkpoint"] == [str(p) for p in members] and summary["ensemble_size"] == 2
    assert summary["threshold"] == threshold and summary["threshold_rule"] == "given"

    geometries, columns, _ = read_polygons(out / "landslides.gpkg")  # in the scene's CRS
    assert len(geometries) > 0
    with rasterio.open(out / "probability.tif") as src:
        shape, transform = src.shape, src.transform
    for geometry, mean_uncertainty in zip(geometries, columns["mean_uncertainty"], strict=True):
        pixels = rasterio.features.rasterize([(geometry, 1)], out_shape=shape, transform=transform) == 1
        assert mean_uncertainty == pytest.approx(float(np.nanmean(uncertainty[pixels])), rel=1e-5)

    # the same folder mapped again by one checkpoint: the ensemble's uncertainty.tif goes
    assert main(["predict", "--checkpoint", str(members[0]), *common, "--out", str(out), "--overwrite"]) == 0
    assert not (out / "uncertainty.tif").exists()
    assert "mean_uncertainty" not in read_polygons(out / "landslides.gpkg")[1]
    assert "uncertainty" not in json.loads((out / "summary.json").read_text())["outputs"]


def test_single_checkpoint_with_tta_writes_uncertainty(tiny_checkpoint: Path, make_scene, tmp_path: Path) -> None:
    scene = make_scene(size=64)
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), str(scene["image"]), "--dem",
                 str(scene["dem"]), "--out", str(tmp_path), "--tta"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tta"] is True and summary["ensemble_size"] == 1
    assert summary["threshold_rule"] == "checkpoint"
    uncertainty = read_band(tmp_path / "uncertainty.tif")
    assert np.nanmax(uncertainty) > 0 and np.nanmin(uncertainty) >= 0


@pytest.mark.slow
def test_dask_worker_processes_rebuild_the_tta_ensemble_on_onnx(members: list[Path], make_scene,
                                                                tmp_path: Path) -> None:
    scene = make_scene(size=160)
    spec = predictor_spec(members, "onnx", "scene", tta=True)
    options = MappingOptions(window=64, overlap=32)
    local = predict_scene(spec, SceneSpec(scene["image"], scene["dem"]), tmp_path / "local", options)
    distributed = predict_scene(spec, SceneSpec(scene["image"], scene["dem"]), tmp_path / "dask",
                                MappingOptions(window=64, overlap=32, workers=2))
    assert local["window"]["n_windows"] > 4 and build_predictor(spec).n_members == 16
    assert distributed["engine"] == "onnx" and distributed["tta"] is True
    for name in ("probability.tif", "uncertainty.tif"):
        np.testing.assert_array_equal(read_band(tmp_path / "dask" / name), read_band(tmp_path / "local" / name))
    assert local["count"] == distributed["count"]
