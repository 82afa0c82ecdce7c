"""Catalogue of bad Landslide4Sense patches (.h5) and dataset folders, through the real CLI.

Images are checked through ``slidemap features PATCH.h5`` (the reader is the same for every
command) and through ``slidemap predict``; masks and folders through ``slidemap evaluate``.
Each case: a non-zero exit, one stderr line naming the file and the problem, no traceback,
and nothing under a final name in the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.trust.conftest import (
    assert_no_output,
    assert_one_line_error,
    make_split_folder,
    patch_image,
    patch_mask,
    run_cli,
    write_h5,
)


@dataclass(frozen=True)
class Case:
    """A bad file: ``make(folder) -> path`` writes it; stderr must contain ``words``."""

    id: str
    make: Callable[[Path], Path]
    words: tuple[str, ...]
    #: the bad path is the dataset folder itself (given as ``--data``), not a file in it.
    is_data: bool = False


def _image_file(datasets: dict[str, object]) -> Callable[[Path], Path]:
    return lambda folder: write_h5(folder / "image_1.h5", datasets)  # type: ignore[arg-type]


def _bytes_file(content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "image_1.h5"
        path.write_bytes(content)
        return path

    return make


def _truncated(folder: Path) -> Path:
    path = write_h5(folder / "image_1.h5", {"img": patch_image(size=64)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupted(folder: Path) -> Path:
    """Valid superblock, the rest overwritten with noise."""
    path = write_h5(folder / "image_1.h5", {"img": patch_image(size=64)})
    data = bytearray(path.read_bytes())
    noise = np.random.default_rng(0).integers(0, 256, len(data) - 96, dtype=np.uint8)
    data[96:] = noise.tobytes()
    path.write_bytes(bytes(data))
    return path


def _missing(folder: Path) -> Path:
    return folder / "image_1.h5"


def _directory(folder: Path) -> Path:
    path = folder / "image_1.h5"
    path.mkdir()
    return path


def _with(value: float, dtype: str = "float64") -> np.ndarray:
    image = patch_image().astype(dtype)
    image[3, 4, 5] = value
    return image


IMAGE_CASES: list[Case] = [
    Case("missing file", _missing, ("does not exist",)),
    Case("a folder named .h5", _directory, ("not a file",)),
    Case("zero bytes", _bytes_file(b""), ("empty",)),
    Case("text file named .h5", _bytes_file(b"img,mask\n1,2\n"), ("not an HDF5",)),
    Case("random bytes", _bytes_file(np.random.default_rng(1).bytes(4096)), ("not an HDF5",)),
    Case("truncated", _truncated, ("truncated",)),
    Case("corrupted after the header", _corrupted, ("damaged",)),
    Case("no 'img' key (keys listed)", _image_file({"image": patch_image()}), ("no dataset 'img'", "image")),
    Case("'img' is a group", _image_file({"img": {"data": patch_image()}}), ("group",)),
    Case("string dtype", _image_file({"img": np.full((16, 16, 14), "x", dtype="S3")}), ("non-numeric",)),
    Case("variable-length strings", _image_file({"img": np.array(["a", "bc"], dtype=object)}), ("non-numeric",)),
    Case("complex dtype", _image_file({"img": patch_image().astype(np.complex64)}), ("non-numeric",)),
    Case("bool dtype", _image_file({"img": np.ones((16, 16, 14), bool)}), ("non-numeric",)),
    Case("compound dtype", _image_file({"img": np.zeros((16, 16), dtype=[("a", "f4"), ("b", "i2")])}),
         ("non-numeric",)),
    Case("scalar", _image_file({"img": np.float64(1.0)}), ("shape ()",)),
    Case("rank 2", _image_file({"img": patch_image()[:, :, 0]}), ("expected (H, W, bands)",)),
    Case("rank 4", _image_file({"img": patch_image()[None]}), ("expected (H, W, bands)",)),
    Case("empty axis", _image_file({"img": np.zeros((0, 16, 14))}), ("expected (H, W, bands)",)),
    Case("13 bands", _image_file({"img": patch_image(n_bands=13)}), ("13 bands", "expected 14")),
    Case("channels-first", _image_file({"img": patch_image().transpose(2, 0, 1)}), ("channels-first",)),
    Case("NaN", _image_file({"img": _with(np.nan)}), ("NaN",)),
    Case("+Inf", _image_file({"img": _with(np.inf)}), ("NaN/Inf",)),
    Case("-Inf in float16", _image_file({"img": _with(-np.inf, "float16")}), ("NaN/Inf",)),
    Case("beyond float32", _image_file({"img": _with(1e300)}), ("float32",)),
]


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.id)
def test_features_refuses_bad_image(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = case.make(tmp_path)
    out = tmp_path / "out"
    result = run_cli(capsys, ["features", bad, "--out", out / "fig.png"])
    assert_one_line_error(result, bad, *case.words)
    assert_no_output(out)


#: for predict a folder is a folder of patches, so "a folder named .h5" is not a bad file there.
PREDICT_CASES = [c for c in IMAGE_CASES if c.id != "a folder named .h5"]


@pytest.mark.parametrize("case", PREDICT_CASES, ids=lambda c: c.id)
def test_predict_refuses_bad_patch(case: Case, tmp_path: Path, l4s_checkpoint: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = case.make(tmp_path)
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", l4s_checkpoint, bad, "--out", out])
    assert_one_line_error(result, bad, *case.words)
    assert_no_output(out)


def test_predict_writes_nothing_when_a_later_patch_is_bad(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad patch anywhere in the input stops the run before any output is written, so a
    half-predicted folder is never mistaken for a complete submission."""
    folder = make_split_folder(tmp_path / "patches", n=9)  # more than one batch of 8
    bad = write_h5(folder / "img" / "image_99.h5", {"img": patch_image(n_bands=13)})
    out = tmp_path / "out"
    result = run_cli(capsys, ["predict", "--checkpoint", l4s_checkpoint, folder, "--out", out])
    assert_one_line_error(result, bad, "13 bands")
    assert_no_output(out)


# ---------------------------------------------------------------- masks and folders
def _mask_case(mask: np.ndarray) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        make_split_folder(folder, n=2)
        return write_h5(folder / "mask" / "mask_1.h5", {"mask": mask})

    return make


def _bad_folder(edit: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        make_split_folder(folder, n=2)
        return edit(folder)

    return make


def _unlink(path: Path) -> Path:
    path.unlink()
    return path


def _mask_with(value: float) -> np.ndarray:
    mask = patch_mask().astype(np.float32)
    mask[2, 3] = value
    return mask


MASK_AND_FOLDER_CASES: list[Case] = [
    Case("mask values {0, 1, 3}", _mask_case(_mask_with(3)), ("values", "3")),
    Case("mask value -1", _mask_case(_mask_with(-1)), ("values", "-1")),
    Case("mask value 0.5", _mask_case(_mask_with(0.5)), ("values", "0.5")),
    Case("mask NaN", _mask_case(_mask_with(np.nan)), ("NaN",)),
    Case("mask rank 3 with 2 channels", _mask_case(np.zeros((16, 16, 2), np.uint8)), ("expected (H, W)",)),
    Case("mask rank 1", _mask_case(np.zeros(16, np.uint8)), ("expected (H, W)",)),
    Case("mask of another size", _mask_case(np.zeros((8, 8), np.uint8)), ("8×8", "16×16")),
    Case("mask string dtype", _mask_case(np.full((16, 16), "1", dtype="S1")), ("non-numeric",)),
    Case("mask without 'mask' key", _bad_folder(lambda f: write_h5(f / "mask" / "mask_1.h5", {"label": patch_mask()})),
         ("no dataset 'mask'", "label")),
    Case("mask zero bytes", _bad_folder(lambda f: _unlink(f / "mask" / "mask_1.h5").touch() or f / "mask" / "mask_1.h5"),
         ("empty",)),
    Case("image without its mask", _bad_folder(lambda f: _unlink(f / "mask" / "mask_1.h5") and f / "img" / "image_1.h5"),
         ("has no mask",)),
    Case("mask without its image", _bad_folder(lambda f: _unlink(f / "img" / "image_1.h5") and f / "mask" / "mask_1.h5"),
         ("has no image",)),
    Case("folder does not exist", lambda f: f / "nowhere", ("does not exist",), is_data=True),
    Case("folder is a file", lambda f: write_h5(f / "data.h5", {"img": patch_image()}), ("is a file",),
         is_data=True),
    Case("folder of no dataset layout", lambda f: f, ("not a Landslide4Sense",), is_data=True),
    Case("img/ without image_<id>.h5", _bad_folder(lambda f: [_unlink(p) for p in (f / "img").iterdir()] and f / "img"),
         ("no image_<id>.h5",)),
]


@pytest.mark.parametrize("case", MASK_AND_FOLDER_CASES, ids=lambda c: c.id)
def test_evaluate_refuses_bad_mask_or_folder(case: Case, tmp_path: Path, l4s_checkpoint: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = case.make(tmp_path)
    out = tmp_path / "out"
    data = bad if case.is_data else tmp_path
    result = run_cli(capsys, ["evaluate", "--checkpoint", l4s_checkpoint, "--data", data, "--out", out])
    assert_one_line_error(result, bad, *case.words)
    assert_no_output(out)


# ------------------------------------------------------- 255 = ignore: accepted, excluded
def test_mask_255_is_accepted_and_excluded_from_metrics(
    tmp_path: Path, l4s_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_split_folder(tmp_path / "split", n=2)
    mask = patch_mask()
    mask[:, -5:] = 255  # 5 columns of 16 rows ignored
    write_h5(folder / "mask" / "mask_1.h5", {"mask": mask})
    result = run_cli(capsys, ["evaluate", "--checkpoint", l4s_checkpoint, "--data", folder,
                              "--out", tmp_path / "out", "--panels", "0"])
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_pixels"] == 2 * 16 * 16 - 5 * 16
    assert metrics["tp"] + metrics["fp"] + metrics["fn"] + metrics["tn"] == metrics["n_pixels"]


def test_mask_255_is_excluded_from_the_loss() -> None:
    import torch

    from slidemap.config import LossTerm
    from slidemap.training.losses import build_loss

    logits = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 2, (1, 8, 8), generator=torch.Generator().manual_seed(1))
    ignored = target.clone()
    ignored[:, :, 4:] = 255
    for name in ("bce", "dice", "focal"):
        loss = build_loss([LossTerm(name)])
        changed = logits.clone()
        changed[:, :, :, 4:] += 100.0  # any change on ignored pixels must not matter
        assert torch.isclose(loss(logits, ignored), loss(changed, ignored)), name
        assert torch.isfinite(loss(logits, ignored)), name


def test_bool_mask_is_read_as_0_1(tmp_path: Path) -> None:
    from slidemap.data.l4s import read_mask

    mask = patch_mask().astype(bool)
    path = write_h5(tmp_path / "mask_1.h5", {"mask": mask})
    np.testing.assert_array_equal(read_mask(path), mask.astype(np.uint8))


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from slidemap.errors import InputError

    bad = _bytes_file(b"not hdf5")(tmp_path)
    from slidemap.cli import main

    with pytest.raises(InputError, match="not an HDF5"):
        main(["features", str(bad), "--out", str(tmp_path / "f.png"), "--debug"])
