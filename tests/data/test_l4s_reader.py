"""The Landslide4Sense reader: layouts, pairing, sorting, and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from slidemap.data.l4s import (
    PatchRef,
    dataset_layout,
    find_patches,
    natural_key,
    read_image,
    read_mask,
    read_patch,
)
from slidemap.errors import InputError


def ids(refs: list[PatchRef]) -> list[str]:
    return [r.id for r in refs]


# ------------------------------------------------------------------ layouts and pairing


def test_official_root_layout_reads_each_split(tmp_path: Path, make_split) -> None:
    make_split(tmp_path / "TrainData", ["1", "2"])
    make_split(tmp_path / "ValidData", ["3"])
    make_split(tmp_path / "TestData", ["4", "5", "6"], masks=False)
    assert dataset_layout(tmp_path) == "root"
    train = find_patches(tmp_path, "train")
    assert ids(train) == ["1", "2"]
    assert train[0] == PatchRef("1", tmp_path / "TrainData/img/image_1.h5", tmp_path / "TrainData/mask/mask_1.h5")
    assert ids(find_patches(tmp_path, "valid")) == ["3"]
    test = find_patches(tmp_path, "test", require_masks=False)
    assert ids(test) == ["4", "5", "6"] and all(r.mask is None for r in test)


def test_split_folder_with_and_without_masks(tmp_path: Path, make_split) -> None:
    make_split(tmp_path / "labelled", ["a", "b"])
    make_split(tmp_path / "unlabelled", ["a", "b"], masks=False)
    assert dataset_layout(tmp_path / "labelled") == "split"
    assert all(r.mask is not None for r in find_patches(tmp_path / "labelled"))
    assert ids(find_patches(tmp_path / "unlabelled", require_masks=False)) == ["a", "b"]
    with pytest.raises(InputError, match="no mask folder"):
        find_patches(tmp_path / "unlabelled")


def test_public_copy_layout_with_split_aliases(tmp_path: Path, write_h5) -> None:
    image = np.ones((4, 4, 14))
    for split, pid in (("train", "7"), ("validation", "8")):
        write_h5(tmp_path / "images" / split / f"image_{pid}.h5", "img", image)
        write_h5(tmp_path / "annotations" / split / f"mask_{pid}.h5", "mask", np.zeros((4, 4), np.uint8))
    assert dataset_layout(tmp_path) == "public"
    train = find_patches(tmp_path, "train")
    assert train == [PatchRef("7", tmp_path / "images/train/image_7.h5", tmp_path / "annotations/train/mask_7.h5")]
    assert ids(find_patches(tmp_path, "valid")) == ["8"]


def test_flat_folder_of_images(tmp_path: Path, write_h5) -> None:
    for pid in ("31", "4"):
        write_h5(tmp_path / f"image_{pid}.h5", "img", np.ones((4, 4, 14)))
    assert dataset_layout(tmp_path) == "flat"
    assert ids(find_patches(tmp_path, require_masks=False)) == ["4", "31"]


def test_string_ids_pair_and_sort_naturally(tmp_path: Path, make_split) -> None:
    make_split(tmp_path, ["1024_1024", "128_0", "1024_128", "0_1152", "abc"])
    refs = find_patches(tmp_path)
    assert ids(refs) == ["0_1152", "128_0", "1024_128", "1024_1024", "abc"]
    assert all(r.mask is not None and r.mask.name == f"mask_{r.id}.h5" for r in refs)
    assert sorted(["10", "9", "100", "1_2"], key=natural_key) == ["1_2", "9", "10", "100"]


def test_hidden_and_foreign_files_are_ignored(tmp_path: Path, make_split, write_h5) -> None:
    make_split(tmp_path, ["1"])
    write_h5(tmp_path / "img" / ".slidemap-tmp-x.h5", "img", np.ones((2, 2, 14)))
    write_h5(tmp_path / "img" / "notes.h5", "img", np.ones((2, 2, 14)))
    (tmp_path / "img" / "readme.txt").write_text("hi")
    assert ids(find_patches(tmp_path)) == ["1"]


# ------------------------------------------------------------------ layout errors


def test_image_without_mask_names_the_image(tmp_path: Path, make_split) -> None:
    make_split(tmp_path, ["1", "2"])
    (tmp_path / "mask" / "mask_2.h5").unlink()
    with pytest.raises(InputError, match="image has no mask mask_2.h5") as info:
        find_patches(tmp_path)
    assert info.value.path == tmp_path / "img" / "image_2.h5"
    assert ids(find_patches(tmp_path, require_masks=False)) == ["1", "2"]


def test_mask_without_image_names_the_mask(tmp_path: Path, make_split) -> None:
    make_split(tmp_path, ["1", "2"])
    (tmp_path / "img" / "image_1.h5").unlink()
    with pytest.raises(InputError, match="mask has no image image_1.h5") as info:
        find_patches(tmp_path, require_masks=False)
    assert info.value.path == tmp_path / "mask" / "mask_1.h5"


@pytest.mark.parametrize(
    ("setup", "split", "message"),
    [
        (lambda p: None, None, "not a Landslide4Sense dataset"),
        (lambda p: (p / "img").mkdir(), None, "contains no image_<id>.h5"),
        (lambda p: (p / "TrainData" / "img").mkdir(parents=True), "train", "contains no image_<id>.h5"),
        (lambda p: (p / "TrainData" / "img").mkdir(parents=True), "valid", "no ValidData/ folder"),
        (lambda p: (p / "TrainData" / "img").mkdir(parents=True), None, "choose one of train, valid, test"),
        (lambda p: (p / "TrainData").mkdir(), "train", "has no img/ folder"),
        (lambda p: (p / "img").mkdir(), "training", "unknown split 'training'"),
    ],
    ids=["empty", "empty-img", "empty-split", "missing-split", "root-without-split", "split-without-img", "unknown-split"],
)
def test_bad_folders_raise_one_input_error(tmp_path: Path, setup, split, message) -> None:
    setup(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        find_patches(tmp_path, split)
    assert str(info.value).startswith(str(tmp_path))


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        find_patches(tmp_path / "nope")
    (tmp_path / "file.h5").write_bytes(b"x")
    with pytest.raises(InputError, match="is a file"):
        find_patches(tmp_path / "file.h5")


# ------------------------------------------------------------------ reading files


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint16])
def test_read_image_transposes_to_channels_first_float32(tmp_path: Path, write_h5, dtype) -> None:
    stored = np.arange(3 * 5 * 14).reshape(3, 5, 14).astype(dtype)
    image = read_image(write_h5(tmp_path / "image_1.h5", "img", stored), n_bands=14)
    assert image.shape == (14, 3, 5) and image.dtype == np.float32 and image.flags.c_contiguous
    np.testing.assert_array_equal(image[4, 2, 3], stored[2, 3, 4])
    np.testing.assert_array_equal(image, np.moveaxis(stored, -1, 0).astype(np.float32))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_IMAGES = {
    "zero-byte": (lambda p, w: p.write_bytes(b""), "empty \\(0 bytes\\)"),
    "not-hdf5": (lambda p, w: p.write_text("not an hdf5 file"), "not an HDF5 file"),
    "truncated": (lambda p, w: (w(p, "img", np.ones((32, 32, 14))), _truncated(p)), "damaged or truncated"),
    "missing-key": (lambda p, w: w(p, "data", np.ones((4, 4, 14))), "no dataset 'img' \\(keys: data\\)"),
    "group-not-array": (lambda p, w: h5py.File(p, "w").create_group("img").file.close(), "is a group"),
    "rank-2": (lambda p, w: w(p, "img", np.ones((4, 4))), "shape \\(4, 4\\); expected \\(H, W, bands\\)"),
    "empty-shape": (lambda p, w: w(p, "img", np.ones((0, 4, 14))), "expected \\(H, W, bands\\)"),
    "band-count": (lambda p, w: w(p, "img", np.ones((4, 4, 13))), "13 bands .*expected 14"),
    "channels-first": (lambda p, w: w(p, "img", np.ones((14, 4, 4))), "looks channels-first"),
    "strings": (lambda p, w: w(p, "img", np.full((2, 2, 14), b"a")), "non-numeric dtype"),
    "complex": (lambda p, w: w(p, "img", np.ones((2, 2, 14), np.complex64)), "non-numeric dtype"),
    "nan": (lambda p, w: w(p, "img", np.where(np.eye(4)[..., None], np.nan, 1.0) * np.ones(14)), "56 NaN/Inf"),
    "inf": (lambda p, w: w(p, "img", np.full((2, 2, 14), np.inf)), "NaN/Inf"),
    "beyond-float32": (lambda p, w: w(p, "img", np.full((2, 2, 14), 1e300)), "beyond the float32 range"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_file_raises_one_input_error_naming_it(tmp_path: Path, write_h5, case: str) -> None:
    make, message = BAD_IMAGES[case]
    path = tmp_path / "image_1.h5"
    make(path, write_h5)
    with pytest.raises(InputError, match=message) as info:
        read_image(path, n_bands=14)
    assert info.value.path == path and "\n" not in str(info.value)


def test_missing_image_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "image_9.h5")


def test_read_mask_accepts_ignore_value_and_trailing_axis(tmp_path: Path, write_h5) -> None:
    mask = np.array([[0, 1], [255, 1]], dtype=np.uint8)
    out = read_mask(write_h5(tmp_path / "m1.h5", "mask", mask))
    assert out.dtype == np.uint8 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, mask)
    np.testing.assert_array_equal(read_mask(write_h5(tmp_path / "m2.h5", "mask", mask[..., None])), mask)
    np.testing.assert_array_equal(read_mask(write_h5(tmp_path / "m3.h5", "mask", mask.astype(np.float64))), mask)


BAD_MASKS = {
    "values": (np.array([[0, 3], [1, 0]], np.uint8), "values \\{0, 1, 3\\}; expected 0/1 \\(255 = ignore\\)"),
    "fraction": (np.array([[0, 0.5]]), "values \\{0, 0.5\\}"),
    "negative": (np.array([[0, -1]], np.int16), "values \\{-1, 0\\}"),
    "nan": (np.array([[0, np.nan]]), "NaN/Inf"),
    "rank-3": (np.zeros((2, 2, 2), np.uint8), "expected \\(H, W\\)"),
    "rank-1": (np.zeros(4, np.uint8), "expected \\(H, W\\)"),
}


@pytest.mark.parametrize("case", list(BAD_MASKS))
def test_bad_mask_raises_one_input_error_naming_it(tmp_path: Path, write_h5, case: str) -> None:
    array, message = BAD_MASKS[case]
    path = write_h5(tmp_path / "mask_1.h5", "mask", array)
    with pytest.raises(InputError, match=message) as info:
        read_mask(path)
    assert info.value.path == path


def test_mask_without_mask_key(tmp_path: Path, write_h5) -> None:
    path = write_h5(tmp_path / "mask_1.h5", "img", np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="no dataset 'mask'"):
        read_mask(path)


def test_read_patch_checks_mask_matches_image(tmp_path: Path, make_split, write_h5) -> None:
    make_split(tmp_path, ["1"], size=8)
    ref = find_patches(tmp_path)[0]
    image, mask = read_patch(ref, n_bands=14)
    assert image.shape == (14, 8, 8) and mask is not None and mask.shape == (8, 8)
    write_h5(ref.mask, "mask", np.zeros((8, 6), np.uint8))
    with pytest.raises(InputError, match="mask is 8×6 but its image image_1.h5 is 8×8") as info:
        read_patch(ref)
    assert info.value.path == ref.mask


# ------------------------------------------------------------------ real files (skip when absent)


@pytest.mark.real_data
def test_reads_the_real_landslide4sense_patches(shared_data: Path) -> None:
    refs = find_patches(shared_data / "l4s-real-unlabelled", require_masks=False)
    assert len(refs) == 14 and ids(refs)[:3] == ["31", "37", "39"]
    for ref in refs:
        image = read_image(ref.image, n_bands=14)
        assert image.shape == (14, 128, 128) and image.dtype == np.float32
        assert np.isfinite(image).all()
        with h5py.File(ref.image) as h5:
            np.testing.assert_allclose(image[13], h5["img"][:, :, 13], rtol=1e-6)


@pytest.mark.real_data
def test_reads_the_real_rgbd_area_with_masks(shared_data: Path) -> None:
    refs = find_patches(shared_data / "rgbd-landslides" / "area_A")
    assert len(refs) == 152 and ids(refs) == sorted(ids(refs), key=natural_key)
    assert all(r.mask is not None and r.mask.name == f"mask_{r.id}.h5" for r in refs)
    image, mask = read_patch(refs[0], n_bands=4)
    assert image.shape == (4, 128, 128) and mask is not None and set(np.unique(mask)) <= {0, 1}
