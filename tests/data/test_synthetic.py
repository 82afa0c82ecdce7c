"""The synthetic Landslide4Sense generator: format, determinism, and the structure it promises."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from slidemap.bands import get_band_set
from slidemap.cli import main as cli_main
from slidemap.data.l4s import find_patches, read_image
from slidemap.data.synthetic import CONFUSERS, LandCover, generate_dataset, synth_patch
from slidemap.data.synthetic.landslides import place_landslides
from slidemap.data.synthetic.terrain import mountain_dem, slope_deg
from slidemap.errors import ConfigError
from slidemap.features import get_feature
from slidemap.io.atomic import TMP_PREFIX

BAND_SET = get_band_set("l4s14")
#: p5 and p95 of each band over the 14 real Landslide4Sense patches (stored units).
REAL_P5 = (0.74, 0.72, 0.69, 0.62, 0.68, 0.60, 0.55, 0.53, 0.88, 0.88, 0.53, 0.52, 0.15, 0.14)
REAL_P95 = (1.24, 1.43, 1.65, 2.38, 2.03, 1.54, 1.47, 1.54, 3.06, 19.3, 2.13, 3.12, 2.02, 3.44)


@pytest.fixture(scope="module")
def patches():
    """100 patches in memory, with their land cover (seed 11)."""
    return [synth_patch(np.random.default_rng([11, i])) for i in range(100)]


def _arrays(root: Path) -> list[bytes]:
    out = []
    for path in sorted(root.rglob("*.h5")):
        with h5py.File(path) as fh:
            out.append(fh[next(iter(fh.keys()))][()].tobytes())
    return out


def test_dataset_has_the_official_layout_keys_shapes_and_dtypes(synthetic_root: Path) -> None:
    total = 0
    for split in ("TrainData", "ValidData", "TestData"):
        images = sorted((synthetic_root / split / "img").glob("image_*.h5"))
        masks = sorted((synthetic_root / split / "mask").glob("mask_*.h5"))
        assert images and len(images) == len(masks)
        assert {p.name[len("image_") :] for p in images} == {p.name[len("mask_") :] for p in masks}
        total += len(images)
        with h5py.File(images[0]) as fh:
            assert list(fh.keys()) == ["img"]
            assert fh["img"].shape == (128, 128, 14) and fh["img"].dtype == np.float32
        with h5py.File(masks[0]) as fh:
            assert list(fh.keys()) == ["mask"]
            assert fh["mask"].shape == (128, 128) and fh["mask"].dtype == np.uint8
            assert set(np.unique(fh["mask"][()])) <= {0, 1}
    assert total == 48
    summary = json.loads((synthetic_root / "synthetic.json").read_text())
    assert summary["seed"] == 7 and sum(s["patches"] for s in summary["splits"].values()) == 48
    assert not list(synthetic_root.rglob(f"{TMP_PREFIX}*"))


def test_reader_takes_the_synthetic_dataset(synthetic_root: Path) -> None:
    refs = find_patches(synthetic_root, "test")
    assert refs and all(ref.mask is not None for ref in refs)
    image = read_image(refs[0].image)
    assert image.shape == (14, 128, 128) and np.isfinite(image).all()


def test_same_seed_gives_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    first = _arrays(generate_dataset(tmp_path / "a", n_patches=3, seed=5))
    again = _arrays(generate_dataset(tmp_path / "b", n_patches=3, seed=5))
    other = _arrays(generate_dataset(tmp_path / "c", n_patches=3, seed=6))
    assert first == again
    assert all(a != b for a, b in zip(first, other, strict=True) if len(set(a)) > 1)


def test_float64_option_stores_the_same_values(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "f64", n_patches=3, seed=5, image_dtype="float64")
    with h5py.File(root / "TrainData" / "img" / "image_1.h5") as fh:
        assert fh["img"].dtype == np.float64
        np.testing.assert_allclose(fh["img"][()], synth_patch(np.random.default_rng([5, 0])).image)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_patches": 2}, "at least 3"),
        ({"split_fractions": (0.5, 0.5, 0.5)}, "summing to 1"),
        ({"image_dtype": "int8"}, "image_dtype"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate_dataset(tmp_path / "bad", **kwargs)


def test_landslide_fraction_is_between_2_and_5_percent(patches) -> None:
    fraction = np.mean([p.mask.mean() for p in patches])
    assert 0.02 <= fraction <= 0.05


def test_landslides_sit_on_steeper_ground_than_confusers(patches) -> None:
    landcover = np.stack([p.landcover for p in patches])
    slope = np.stack([p.slope_deg for p in patches])
    confuser = np.isin(landcover, [int(c) for c in CONFUSERS])
    assert confuser.mean() > np.mean(
        landcover == LandCover.LANDSLIDE
    )  # enough look-alikes to fool spectra
    assert slope[landcover == LandCover.LANDSLIDE].mean() > slope[confuser].mean() + 15.0


def test_ndvi_under_landslides_is_lower_than_under_forest(patches) -> None:
    ndvi_feature = get_feature("ndvi")
    ndvi = np.stack(
        [ndvi_feature.compute(np.moveaxis(p.image, -1, 0), BAND_SET, 10.0) for p in patches]
    )
    landcover = np.stack([p.landcover for p in patches])
    landslide, forest = ndvi[landcover == LandCover.LANDSLIDE], ndvi[landcover == LandCover.FOREST]
    assert landslide.mean() < forest.mean() - 0.3
    assert np.median(landslide) < 0.3 < np.median(forest)


def test_band_percentiles_match_the_real_files_within_a_factor_of_two(patches) -> None:
    pixels = np.concatenate([p.image.reshape(-1, 14) for p in patches])
    p5, p95 = np.percentile(pixels, [5, 95], axis=0)
    for band, name in enumerate(BAND_SET.names):
        if name == "slope":  # flat valley floors put p5 at 0-1 degree, as in the real data
            assert p5[band] <= 2 * REAL_P5[band], name
        else:
            assert REAL_P5[band] / 2 <= p5[band] <= REAL_P5[band] * 2, name
        assert REAL_P95[band] / 2 <= p95[band] <= REAL_P95[band] * 2, name


def test_slope_band_is_eq15_of_the_dem_band(patches) -> None:
    slope_feature = get_feature("slope")
    for patch in patches[:10]:
        bands = np.moveaxis(patch.image, -1, 0).astype(np.float32)
        from_dem = slope_feature.compute(bands, BAND_SET, 10.0)
        stored = bands[BAND_SET.index("slope")] * BAND_SET.band("slope").physical_per_unit
        # Stored slope and DEM are rounded to whole degrees and metres, as in the real files.
        assert np.median(np.abs(from_dem - stored)[2:-2, 2:-2]) < 1.5


def test_landslides_run_downhill_from_a_steep_crown() -> None:
    rng = np.random.default_rng(3)
    dem = mountain_dem((160, 160), rng, relief_m=300.0, base_m=1000.0)
    slope = slope_deg(dem, 10.0)
    slides = place_landslides(dem, slope, slope > 25, rng, pixel_size_m=10.0, target_area_px=2000)
    assert slides
    for slide in slides:
        top, toe = np.rint(slide.path_rc[[0, -1]]).astype(int).clip(0, 159)
        assert dem[tuple(top)] > dem[tuple(toe)]
        assert slope[tuple(top)] > 25
        length = np.sum(np.linalg.norm(np.diff(slide.path_rc, axis=0), axis=1))
        assert length > 2 * slide.radius_px.max()  # elongated along the path


def test_synth_command_writes_a_dataset_and_prints_a_summary(tmp_path: Path, capsys) -> None:
    assert cli_main(["synth", "--out", str(tmp_path / "d"), "--patches", "3", "--seed", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert "3 patches" in line and "landslide pixels" in line
    assert len(find_patches(tmp_path / "d", "train")) == 1


def test_synth_command_reports_bad_patch_count_on_one_line(tmp_path: Path, capsys) -> None:
    assert cli_main(["synth", "--out", str(tmp_path / "d"), "--patches", "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at least 3" in err
