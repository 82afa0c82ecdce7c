"""The radiometry check refuses values the model has never seen, and nothing else.

Legitimate scenes — the synthetic scene, a snow-covered one, one of water, a dark valley and
a mosaic of the 14 real Landslide4Sense patches — pass; injected faults — digital numbers
read as reflectance (×10 000), a scale applied twice (÷10 000), the +0.1 of an undeclared
baseline-04.00 offset, an offset applied to data without one — are refused with one line
naming the band, and ``--accept-radiometry`` maps them anyway.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sentinel2_helpers import L2A_BANDS, make_engine, write_multiband

from slidemap.bands import get_band_set
from slidemap.data.synthetic.sentinel2 import Scene10m, write_band_folder, write_safe
from slidemap.errors import InputError
from slidemap.inference.radiometry import check_radiometry
from slidemap.inference.scene import SceneReader, SceneSpec
from tests.trust.conftest import assert_one_line_error, run_cli


def check(image: Path, dem: Path | None, engine=None, **kwargs) -> dict:
    engine = engine or make_engine()
    with SceneReader(SceneSpec(image, dem), engine.pipeline.band_set) as reader:
        return check_radiometry(reader, engine.stats, **kwargs)


def variant(scene: Scene10m, transform) -> dict[str, np.ndarray]:
    """Each band's DN through ``transform(name, dn float64) -> dn``, 0 (no data) kept."""
    return {n: np.where(b > 0, transform(n, b.astype(np.float64)), 0) for n, b in scene.bands.items()}


def _snow(name: str, dn: np.ndarray) -> np.ndarray:
    level = {"B11": 900, "B12": 400, "B10": 30}.get(name, 8800)  # snow is dark in the SWIR
    return level * (0.85 + 0.3 * dn / dn.max())


LEGITIMATE = {
    "snow": lambda n, dn: _snow(n, dn),
    "water": lambda n, dn: np.clip(dn * 0.15 - 40, 5, None) if n not in ("B2", "B3") else dn * 0.5,
    "dark valley (x0.3)": lambda n, dn: np.maximum(dn * 0.3, 1),
}


@pytest.mark.parametrize("name", ["synthetic", *LEGITIMATE])
def test_legitimate_scenes_pass(name, s2_scene, tmp_path) -> None:
    scene = s2_scene["scene"]
    image = s2_scene["image"] if name == "synthetic" else write_multiband(
        tmp_path / "scene.tif", scene, values=variant(scene, LEGITIMATE[name]))
    section = check(image, s2_scene["dem"])
    assert section["status"] == "ok" and not section["problems"], section["problems"]
    assert section["sample_pixels"] > 10_000
    assert set(section["bands"]) == {*L2A_BANDS} - {"slope"}  # slope is computed, not checked
    assert all(b["ok"] for b in section["bands"].values())


@pytest.fixture(scope="module")
def real_mosaic(tmp_path_factory) -> dict:
    """The 14 real Landslide4Sense patches side by side: 12 bands as float32 reflectance and
    the DEM in metres, on a 10 m UTM grid."""
    from slidemap.data.mosaic import write_patch_mosaic
    from tests.conftest import SHARED_DATA

    files = sorted(glob.glob(str(SHARED_DATA / "l4s-real-unlabelled" / "image_*.h5")))
    if not files:
        pytest.skip("../shared/data/l4s-real-unlabelled is not present")
    paths = write_patch_mosaic(files, tmp_path_factory.mktemp("real"))
    with rasterio.open(paths["image"]) as src:
        paths["values"] = src.read().transpose(1, 2, 0)
    return paths


def test_real_landslide4sense_patches_pass(real_mosaic) -> None:
    engine = make_engine(bands=None)  # every l4s14 band, B10 included
    section = check(real_mosaic["image"], real_mosaic["dem"], engine)
    assert section["status"] == "ok", section["problems"]
    assert 0.03 < section["bands"]["B2"]["median"] < 0.2  # reflectance, as the real files hold


def _float_dn(scene, tmp_path):  # DN in a float raster: read as reflectance, 10,000x too high
    return write_multiband(tmp_path / "dn.tif", scene, dtype="float32", values=variant(scene, lambda n, dn: dn))


def _scaled_twice(scene, tmp_path):  # reflectance in a float raster that also declares scale 1e-4
    return write_multiband(tmp_path / "twice.tif", scene, dtype="float32", scale=1e-4,
                           values=variant(scene, lambda n, dn: dn / 1e4))


def _undeclared_offset(scene, tmp_path):  # baseline 04.00+ files without their metadata
    folder = tmp_path / "loose"
    write_band_folder(folder, scene, naming="esa", driver="JP2OpenJPEG", offset_dn=-1000, declare=False)
    return folder


def _offset_applied_twice(scene, tmp_path):  # plain DN declaring the -0.1 offset they do not have
    return write_multiband(tmp_path / "shifted.tif", scene, scale=1e-4, offset=-0.1)


FAULTS = {
    "digital numbers read as reflectance": (_float_dn, "× too high; digital numbers read as reflectance"),
    "scale applied twice": (_scaled_twice, "× too low; a scale applied"),
    "undeclared +0.1 offset": (_undeclared_offset, "offset"),
    "offset applied twice": (_offset_applied_twice, "offset"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_injected_faults_are_refused_and_can_be_accepted(fault, s2_scene, tmp_path, caplog) -> None:
    make, words = FAULTS[fault]
    image = make(s2_scene["scene"], tmp_path)
    with pytest.raises(InputError) as error:
        check(image, s2_scene["dem"])
    message = str(error.value)
    assert "\n" not in message and str(image) in message and words in message
    assert "override with --accept-radiometry" in message
    with caplog.at_level(logging.WARNING):
        section = check(image, s2_scene["dem"], accept=True)
    assert section["status"] == "accepted" and section["problems"]
    assert "radiometry accepted despite" in caplog.text


@pytest.mark.parametrize("fault", ["digital numbers read as reflectance", "undeclared +0.1 offset"])
def test_faults_injected_in_the_real_patches_are_refused(fault, real_mosaic, tmp_path) -> None:
    values = real_mosaic["values"]
    with rasterio.open(real_mosaic["image"]) as src:
        profile, names = src.profile, src.descriptions
    broken = tmp_path / "broken.tif"
    shift = (lambda x: x * 1e4) if fault.startswith("digital") else (lambda x: x + 0.1)
    with rasterio.open(broken, "w", **profile) as dst:
        for i, name in enumerate(names, start=1):
            dst.write(shift(values[:, :, i - 1]).astype(np.float32), i)
            dst.set_band_description(i, name)
    with pytest.raises(InputError, match="implausible radiometry"):
        check(broken, real_mosaic["dem"], make_engine(bands=None))


def test_the_band_is_named_with_what_was_expected_and_found(s2_scene, tmp_path) -> None:
    scene = s2_scene["scene"]
    values = dict(scene.bands)
    values["B11"] = np.where(scene.bands["B11"] > 0, scene.bands["B11"].astype(np.float32), 0)
    mixed = {n: (v / 1e4 if n != "B11" else v) for n, v in values.items()}  # one band left in DN
    image = write_multiband(tmp_path / "mixed.tif", scene, dtype="float32", values=mixed)
    # expected: the training mean, 1.0 stored unit x 0.1114 reflectance per unit (l4s14's B11)
    with pytest.raises(InputError, match=r"band B11: median reflectance \d{3,4}, expected about "
                                         r"0\.111 \(the training mean\): [\d,]+× too high") as error:
        check(image, s2_scene["dem"])
    assert "B4" not in str(error.value)


def test_level1c_product_given_to_a_level2a_model_is_flagged(s2_scene, tmp_path, caplog) -> None:
    l2a_set = get_band_set("l4s14").to_dict() | {"name": "l4s14-l2a", "processing_level": "L2A"}
    engine = make_engine(band_set=l2a_set)
    product = write_safe(tmp_path, s2_scene["scene"], level="L1C", baseline="05.09")
    with caplog.at_level(logging.WARNING):
        section = check(product, s2_scene["dem"], engine)
    assert section["processing_level"] == {"scene": "L1C", "model": "L2A", "match": False}
    assert "Level-1C product (top-of-atmosphere reflectance) but the model was trained on Level-2A" in caplog.text


def test_predict_refuses_on_one_line_and_maps_with_accept_radiometry(s2_scene, tiny_l2a_checkpoint, tmp_path, capsys) -> None:
    image = _float_dn(s2_scene["scene"], tmp_path)
    out = tmp_path / "map"
    args = ["predict", "--checkpoint", tiny_l2a_checkpoint, image, "--dem", s2_scene["dem"], "--out", out,
            "--window", "128", "--overlap", "32", "--engine", "torch"]
    result = run_cli(capsys, args)
    assert_one_line_error(result, image.name, "implausible radiometry", "--accept-radiometry")
    assert not (out / "probability.tif").exists()
    accepted = run_cli(capsys, [*args, "--accept-radiometry"])
    assert accepted.code == 0, accepted.err
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["radiometry"]["status"] == "accepted"
