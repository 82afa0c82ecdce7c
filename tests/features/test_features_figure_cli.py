"""The Fig. 2 feature-map figure and the ``slidemap features`` command."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from slidemap.cli import main
from slidemap.io.atomic import TMP_PREFIX
from slidemap.plots.features import plot_feature_maps, true_colour

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TITLES = ["True colour (RGB)", "NDVI", "Slope (°)", "Elevation (m)", "NDMI", "GNDVI", "Brightness (reflectance)", "BSI"]


def write_patch(path: Path, n_bands: int = 14, size: int = 24) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("img", data=rng.uniform(0.2, 3.0, (size, size, n_bands)))
    return path


def _ndvi(bands: np.ndarray) -> np.ndarray:
    """NDVI of an ``l4s14`` stack by hand: B8 and B4 (indices 7 and 3) in reflectance."""
    from slidemap.bands import get_band_set

    scale = {band.name: band.physical_per_unit for band in get_band_set("l4s14").bands}
    nir, red = bands[7] * scale["B8"], bands[3] * scale["B4"]
    return (nir - red) / (nir + red)


def _panels(fig) -> dict[str, object]:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def test_figure_has_true_colour_and_seven_titled_maps_with_colour_bars() -> None:
    bands = np.random.default_rng(1).uniform(0.2, 3.0, (14, 20, 20)).astype(np.float32)
    fig = plot_feature_maps(bands, "l4s14", pixel_size_m=10.0)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == TITLES
    assert len(fig.axes) == 8 + 7  # the seven maps each have a colour bar
    by_title = _panels(fig)
    # the maps show the features of these bands, each stretched 2-98 % with a matching colour bar
    ndvi = by_title["NDVI"].images[0]
    np.testing.assert_allclose(ndvi.get_array(), _ndvi(bands.astype(np.float64)), rtol=1e-5, atol=1e-6)
    for title in TITLES[1:]:
        image = by_title[title].images[0]
        shown = np.asarray(image.get_array(), dtype=np.float64)
        assert image.get_clim() == pytest.approx(tuple(np.percentile(shown, (2, 98))), rel=1e-6), title
        assert image.colorbar is not None
        assert image.colorbar.ax.get_ylim() == pytest.approx(image.get_clim(), rel=1e-6), title
    assert by_title["Elevation (m)"].images[0].get_array().std() > 0
    # true colour is red, green, blue (B4, B3, B2), not the first three bands
    rgb = by_title["True colour (RGB)"].images[0].get_array()
    for channel, band in enumerate((3, 2, 1)):
        np.testing.assert_allclose(rgb[..., channel], _stretched(bands[band]), atol=1e-6)


def _stretched(band: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(band.astype(np.float64), (2, 98))
    return np.clip((band - lo) / (hi - lo), 0.0, 1.0)


def test_figure_for_rgbd_marks_unavailable_maps() -> None:
    bands = np.random.default_rng(2).uniform(0, 255, (4, 16, 16)).astype(np.float32)
    fig = plot_feature_maps(bands, "rgbd")
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert panels["Slope (°)"].images and not panels["NDVI"].images
    assert "needs nir" in panels["NDVI"].texts[0].get_text()


def test_true_colour_is_stretched_to_unit_range() -> None:
    from slidemap.bands import get_band_set

    bands = np.random.default_rng(3).uniform(0, 5, (14, 30, 30))
    rgb = true_colour(bands, get_band_set("l4s14"))
    assert rgb.shape == (30, 30, 3) and rgb.min() == 0.0 and rgb.max() == 1.0


def test_features_command_writes_the_png_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    saved_figures) -> None:
    patch = write_patch(tmp_path / "image_1.h5")
    out = tmp_path / "figs" / "fig2.png"
    assert main(["features", str(patch), "--out", str(out), "--pixel-size", "10", "--dpi", "40"]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert not list(out.parent.glob(f"{TMP_PREFIX}*"))
    assert str(out) in capsys.readouterr().out
    fig = saved_figures(out)
    assert fig.get_suptitle() == "image_1.h5"
    with h5py.File(patch) as h5:  # the file stores (H, W, C)
        bands = np.moveaxis(h5["img"][()], -1, 0)
    np.testing.assert_allclose(_panels(fig)["NDVI"].images[0].get_array(), _ndvi(bands), rtol=1e-5, atol=1e-6)


def test_features_command_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patch = write_patch(tmp_path / "image_1.h5", n_bands=4)
    assert main(["features", str(patch), "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "image_1.h5" in err and "expected 14" in err
    assert main(["features", str(patch), "--band-set", "rgbd", "--out", str(tmp_path / "f.xyz")]) == 2
    assert "use one of" in capsys.readouterr().err
    assert not list(tmp_path.glob("f.*"))


@pytest.mark.real_data
def test_features_figure_of_a_real_patch(shared_data: Path, tmp_path: Path, saved_figures) -> None:
    out = tmp_path / "real.png"
    patch = shared_data / "l4s-real-unlabelled" / "image_31.h5"
    assert main(["features", str(patch), "--out", str(out), "--dpi", "30"]) == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    panels = _panels(saved_figures(out))
    assert list(panels) == TITLES
    with h5py.File(patch) as h5:
        bands = np.moveaxis(h5["img"][()], -1, 0).astype(np.float64)
    np.testing.assert_allclose(panels["NDVI"].images[0].get_array(), _ndvi(bands), rtol=1e-4, atol=1e-5)
