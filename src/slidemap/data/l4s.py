"""Landslide4Sense reader: find patch files in any of the public layouts and read them safely.

Landslide4Sense-2022 (Ghorbanzadeh et al., 2022) ships 128×128 patches as HDF5 files: the
image under key ``img`` stored ``(H, W, C)`` (14 bands, float64 in the official release) and
the label under key ``mask`` stored ``(H, W)`` with 0 = background, 1 = landslide. This
module reads the dataset as it is, in any of these layouts (``<id>`` is any string; image
and mask are paired by it, ``image_1024_1024.h5`` ↔ ``mask_1024_1024.h5``)::

    root/                         the official release ("root" layout)
      TrainData/img/image_<id>.h5
      TrainData/mask/mask_<id>.h5
      ValidData/img/...  ValidData/mask/...
      TestData/img/...  [TestData/mask/...]

    root/                         the other public copy ("public" layout)
      images/<split>/image_<id>.h5
      annotations/<split>/mask_<id>.h5

    split/                        one split folder ("split" layout)
      img/image_<id>.h5
      mask/mask_<id>.h5           (may be absent when masks are not required)

    folder/                       a flat folder of patches ("flat" layout)
      image_<id>.h5 [mask_<id>.h5]

Every problem with a file raises one :class:`~slidemap.errors.InputError` naming the file and
the problem; nothing from h5py or numpy escapes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from slidemap.errors import InputError, SlidemapError
from slidemap.io.atomic import atomic_path
from slidemap.io.resources import array_bytes, check_allocation

log = logging.getLogger(__name__)

#: Split names accepted by :func:`find_patches`.
SPLITS: tuple[str, ...] = ("train", "valid", "test")
#: Folder names of each split in the official release.
OFFICIAL_SPLIT_DIRS: dict[str, str] = {"train": "TrainData", "valid": "ValidData", "test": "TestData"}
#: Folder names of each split in the other public copy (first existing one wins).
PUBLIC_SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "valid": ("valid", "validation", "val"),
    "test": ("test", "testing"),
}
#: HDF5 dataset of the image (``(H, W, C)``) and of the mask (``(H, W)``) in a patch file.
IMAGE_KEY = "img"
MASK_KEY = "mask"
#: File names: ``image_<id>.h5`` and ``mask_<id>.h5`` (also what ``predict`` writes).
IMAGE_PREFIX = "image_"
MASK_PREFIX = "mask_"
SUFFIX = ".h5"
#: Folders of a split: ``img/`` and ``mask/``.
IMAGE_DIR = "img"
MASK_DIR = "mask"
#: Mask values: background, landslide, and pixels to ignore (the official baseline's
#: ``ignore_index``; excluded from losses and metrics). The one home of these numbers.
BACKGROUND = 0
LANDSLIDE = 1
IGNORE_INDEX = 255
_VALID_MASK_VALUES = frozenset({BACKGROUND, LANDSLIDE, IGNORE_INDEX})

Layout = Literal["root", "public", "split", "flat"]


@dataclass(frozen=True)
class PatchRef:
    """One patch: its id and files.

    Attributes:
        id: the ``<id>`` of ``image_<id>.h5`` (any string, e.g. ``"17"`` or ``"1024_1024"``).
        image: path of the image file.
        mask: path of the mask file, or ``None`` for unlabelled patches.
    """

    id: str
    image: Path
    mask: Path | None


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs numerically: ``"2" < "10"``, ``"1_128" < "1_1024"``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def image_file_name(patch_id: str) -> str:
    """``image_<id>.h5``."""
    return f"{IMAGE_PREFIX}{patch_id}{SUFFIX}"


def mask_file_name(patch_id: str) -> str:
    """``mask_<id>.h5`` (a label, or a prediction in the official submission format)."""
    return f"{MASK_PREFIX}{patch_id}{SUFFIX}"


# ---------------------------------------------------------------------------------------------
# Finding patches


def dataset_layout(path: str | Path) -> Layout:
    """Which layout ``path`` has: ``"root"``, ``"public"``, ``"split"`` or ``"flat"``.

    Raises:
        InputError: ``path`` is missing, not a folder, or none of the layouts.
    """
    folder = Path(path)
    if not folder.exists():
        raise InputError("folder does not exist", folder)
    if not folder.is_dir():
        raise InputError(
            "is a file; expected a dataset folder (a Landslide4Sense root, or a folder with img/ "
            "and mask/)",
            folder,
        )
    if any((folder / name).is_dir() for name in OFFICIAL_SPLIT_DIRS.values()):
        return "root"
    if (folder / "images").is_dir():
        return "public"
    if (folder / IMAGE_DIR).is_dir():
        return "split"
    if any(folder.glob(f"{IMAGE_PREFIX}*{SUFFIX}")):
        return "flat"
    raise InputError(
        "is not a Landslide4Sense dataset: expected TrainData/ValidData/TestData, images/ + "
        "annotations/, img/ + mask/, or image_<id>.h5 files",
        folder,
    )


def _check_split(split: str, path: Path) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}", path)


def _split_dirs(folder: Path, layout: Layout, split: str | None) -> tuple[Path, Path | None]:
    """(image folder, mask folder or None if absent) of ``split`` in ``folder``."""
    if layout in ("split", "flat"):
        if split is not None:
            log.debug("%s is a single split folder; split=%r is ignored", folder, split)
        if layout == "flat":
            return folder, folder
        mask_dir = folder / MASK_DIR
        return folder / IMAGE_DIR, mask_dir if mask_dir.is_dir() else None
    if split is None:
        raise InputError(
            f"is a dataset root with splits; choose one of {', '.join(SPLITS)} (--split)", folder
        )
    _check_split(split, folder)
    if layout == "root":
        split_dir = folder / OFFICIAL_SPLIT_DIRS[split]
        if not split_dir.is_dir():
            raise InputError(f"has no {OFFICIAL_SPLIT_DIRS[split]}/ folder for split {split!r}", folder)
        if not (split_dir / IMAGE_DIR).is_dir():
            raise InputError(f"has no {IMAGE_DIR}/ folder", split_dir)
        mask_dir = split_dir / MASK_DIR
        return split_dir / IMAGE_DIR, mask_dir if mask_dir.is_dir() else None
    candidates = PUBLIC_SPLIT_DIRS[split]
    image_dir = next((folder / "images" / n for n in candidates if (folder / "images" / n).is_dir()), None)
    if image_dir is None:
        raise InputError(f"has no images/{candidates[0]}/ folder for split {split!r}", folder)
    mask_dir = folder / "annotations" / image_dir.name
    return image_dir, mask_dir if mask_dir.is_dir() else None


def _ids(folder: Path, prefix: str) -> dict[str, Path]:
    """``{id: path}`` of the ``<prefix><id>.h5`` files in ``folder`` (hidden files skipped)."""
    found: dict[str, Path] = {}
    for file in folder.iterdir():
        name = file.name
        if name.startswith(".") or not name.endswith(SUFFIX) or not name.startswith(prefix):
            continue
        found[name[len(prefix) : -len(SUFFIX)]] = file
    return found


def _ignored_h5(folder: Path, prefixes: Iterable[str]) -> list[str]:
    return sorted(
        f.name
        for f in folder.glob(f"*{SUFFIX}")
        if not f.name.startswith(".") and not f.name.startswith(tuple(prefixes))
    )


def find_patches(
    path: str | Path, split: str | None = None, require_masks: bool = True
) -> list[PatchRef]:
    """List the patches of one split, paired by id and sorted naturally by id.

    Args:
        path: a Landslide4Sense root, the other public layout's root, one split folder
            (``img/`` + ``mask/``) or a flat folder of ``image_<id>.h5`` files (see the module
            docstring). ``split`` is ignored for a split or flat folder.
        split: ``"train"``, ``"valid"`` or ``"test"``; required for a root.
        require_masks: every image must have a mask (training, evaluation). When ``False``
            (prediction) images without masks get ``mask=None``.

    Returns:
        One :class:`PatchRef` per image, sorted by :func:`natural_key` of the id.

    Raises:
        InputError: missing or unknown folder, unknown split, no images, an image without a
            mask (when required) or a mask without an image. Files are not opened here;
            :func:`read_image` / :func:`read_mask` check their content.
    """
    folder = Path(path)
    if split is not None:
        _check_split(split, folder)
    layout = dataset_layout(folder)
    image_dir, mask_dir = _split_dirs(folder, layout, split)
    images = _ids(image_dir, IMAGE_PREFIX)
    if not images:
        others = _ignored_h5(image_dir, (IMAGE_PREFIX, MASK_PREFIX))
        hint = f" (ignored {len(others)} other .h5 files, e.g. {others[0]})" if others else ""
        raise InputError(f"contains no {IMAGE_PREFIX}<id>{SUFFIX} files{hint}", image_dir)
    masks = _ids(mask_dir, MASK_PREFIX) if mask_dir is not None else {}
    if require_masks and mask_dir is None:
        raise InputError(
            "has images but no mask folder; masks are needed here (training or evaluation)",
            image_dir.parent if layout != "flat" else image_dir,
        )
    orphans = sorted(set(masks) - set(images), key=natural_key)
    if orphans:
        raise InputError(
            f"mask has no image {IMAGE_PREFIX}{orphans[0]}{SUFFIX} in {image_dir} "
            f"({len(orphans)} masks without an image)",
            masks[orphans[0]],
        )
    unlabelled = sorted(set(images) - set(masks), key=natural_key)
    if require_masks and unlabelled:
        first = unlabelled[0]
        raise InputError(
            f"image has no mask {MASK_PREFIX}{first}{SUFFIX} in {mask_dir} "
            f"({len(unlabelled)} images without a mask)",
            images[first],
        )
    ignored = _ignored_h5(image_dir, (IMAGE_PREFIX, MASK_PREFIX))
    if ignored:
        log.warning("%s: ignored %d .h5 files not named %s<id>%s (e.g. %s)",
                    image_dir, len(ignored), IMAGE_PREFIX, SUFFIX, ignored[0])
    return [
        PatchRef(id=pid, image=images[pid], mask=masks.get(pid))
        for pid in sorted(images, key=natural_key)
    ]


def split_refs(path: str | Path, split: str | None = "test") -> list[PatchRef]:
    """Labelled patches of ``split`` in a dataset root, or of ``path`` itself when it is one
    split folder (or a flat folder), where ``split`` does not apply."""
    layout = dataset_layout(path)
    return find_patches(path, split=split if layout in ("root", "public") else None)


#: separator between an area's name and a patch id in pooled (several-folder) splits
AREA_SEPARATOR = "/"
_GRID_ID = re.compile(r"(?:^|_)(\d+)_(\d+)$")


def grid_position(patch_id: str) -> tuple[str, int, int] | None:
    """``(area, row, col)`` of an id ``[<area>/]<row>_<col>``, else ``None``.

    ``<row>_<col>`` is the patch's pixel offset in its scene (the rgbd areas' naming:
    ``image_1024_1152.h5``); ``area`` is the folder the patch came from in a pooled split
    (:func:`find_area_patches`), ``""`` for a plain id. Landslide4Sense's numbered ids
    (``image_17.h5``) carry no position: ``None``.
    """
    area, _, local = patch_id.rpartition(AREA_SEPARATOR)
    match = _GRID_ID.search(local)
    if match is None:
        return None
    return area, int(match.group(1)), int(match.group(2))


def area_names(paths: Sequence[str | Path]) -> list[str]:
    """A distinct short name per folder: its own name (``area_A``), with its parents' names
    joined by ``-`` when two folders share one (``x-area_A``, ``y-area_A``).

    The folders must be distinct (:func:`find_area_patches` checks that).
    """
    parts = [Path(p).resolve().parts for p in paths]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ["-".join(p[-depth:]).lstrip("/-") or "root" for p in parts]
        if len(set(names)) == len(names):
            return names
    return [f"area{i}" for i in range(len(parts))]


def find_area_patches(
    paths: str | Path | Sequence[str | Path], split: str | None = None, require_masks: bool = True
) -> list[PatchRef]:
    """The patches of one folder (:func:`find_patches`), or of several pooled.

    With several folders (areas) every id is qualified by its folder's name,
    ``area_A/1024_1152``, so that ids repeated across areas stay distinct; one folder keeps
    its plain ids. The order is folder by folder, each sorted as :func:`find_patches` sorts.

    Raises:
        InputError: as :func:`find_patches`, or a folder given twice.
    """
    if isinstance(paths, str | Path):
        return find_patches(paths, split=split, require_masks=require_masks)
    folders = [Path(p) for p in paths]
    if not folders:
        raise InputError("no data folders given (an empty list)", "<config>")
    seen: dict[Path, Path] = {}
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            raise InputError(f"is given twice (also as {seen[key]}); each area once", folder)
        seen[key] = folder
    if len(folders) == 1:
        return find_patches(folders[0], split=split, require_masks=require_masks)
    refs: list[PatchRef] = []
    for name, folder in zip(area_names(folders), folders, strict=True):
        refs.extend(
            PatchRef(id=f"{name}{AREA_SEPARATOR}{ref.id}", image=ref.image, mask=ref.mask)
            for ref in find_patches(folder, split=split, require_masks=require_masks)
        )
    return refs


# ---------------------------------------------------------------------------------------------
# Reading files


def _read_array(path: Path, key: str, allow_bool: bool = False) -> np.ndarray:
    """The dataset ``key`` of HDF5 file ``path`` as a numeric numpy array, or an InputError.

    ``allow_bool`` accepts a boolean dataset (read as 0/1): meaningful for a mask, not for
    an image of reflectances.
    """
    if not path.exists():
        raise InputError("file does not exist", path)
    if not path.is_file():
        raise InputError("is not a file", path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path)
    if not h5py.is_hdf5(path):
        raise InputError("is not an HDF5 file (expected a Landslide4Sense .h5 patch)", path)
    try:
        with h5py.File(path, "r") as h5:
            if key not in h5:
                keys = ", ".join(sorted(h5.keys())) or "none"
                raise InputError(f"has no dataset {key!r} (keys: {keys})", path)
            node = h5[key]
            if not isinstance(node, h5py.Dataset):
                raise InputError(f"{key!r} is a group, not an array", path)
            dtype = node.dtype
            numeric = np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
            if not (numeric or (allow_bool and dtype == np.bool_)):
                raise InputError(f"{key!r} has non-numeric dtype {dtype}; expected numbers", path)
            # the shape is the file's word: check what reading it allocates (the array and
            # its float32 copy) before reading, not after the machine ran out of memory
            check_allocation(array_bytes(node.shape, dtype.itemsize + 4),
                             f"{key!r} of shape {node.shape} ({dtype})", path)
            array = np.asarray(node[()])
    except SlidemapError:
        raise
    except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"cannot read {key!r}; the file is damaged or truncated ({reason})", path) from None
    return array


def _require_finite(array: np.ndarray, path: Path, what: str) -> None:
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            raise InputError(f"{what} has {int(bad.sum())} NaN/Inf values; expected finite numbers", path)


def read_image(path: str | Path, n_bands: int | None = None) -> np.ndarray:
    """Read the image of one patch.

    Args:
        path: ``image_<id>.h5`` with dataset ``img`` of shape ``(H, W, C)``, any real dtype
            (float64 in the official release, float32 in other copies).
        n_bands: expected ``C`` (14 for Landslide4Sense); ``None`` accepts any.

    Returns:
        ``(C, H, W) float32`` in the file's stored units, C-contiguous.

    Raises:
        InputError: unreadable/empty/non-HDF5 file, no ``img``, rank ≠ 3, empty shape, wrong
            band count, non-numeric dtype, NaN/Inf (also after the cast to float32).
    """
    path = Path(path)
    array = _read_array(path, IMAGE_KEY)
    if array.ndim != 3 or 0 in array.shape:
        raise InputError(f"{IMAGE_KEY!r} has shape {array.shape}; expected (H, W, bands)", path)
    if n_bands is not None and array.shape[2] != n_bands:
        hint = " (it looks channels-first; store (H, W, bands))" if array.shape[0] == n_bands else ""
        raise InputError(
            f"{IMAGE_KEY!r} has {array.shape[2]} bands (shape {array.shape}); expected {n_bands}{hint}",
            path,
        )
    _require_finite(array, path, f"{IMAGE_KEY!r}")
    with np.errstate(over="ignore"):
        image = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
    _require_finite(image, path, f"{IMAGE_KEY!r} (beyond the float32 range)")
    return image


def read_mask(path: str | Path) -> np.ndarray:
    """Read the mask of one patch.

    Args:
        path: ``mask_<id>.h5`` with dataset ``mask`` of shape ``(H, W)`` (``(H, W, 1)`` is
            accepted), integer, integral float or boolean values.

    Returns:
        ``(H, W) uint8`` with 0 = background, 1 = landslide, 255 = ignore.

    Raises:
        InputError: unreadable file, no ``mask``, wrong shape, non-numeric dtype, NaN/Inf,
            values other than 0, 1 and 255.
    """
    path = Path(path)
    array = _read_array(path, MASK_KEY, allow_bool=True)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2 or 0 in array.shape:
        raise InputError(f"{MASK_KEY!r} has shape {array.shape}; expected (H, W)", path)
    _require_finite(array, path, f"{MASK_KEY!r}")
    values = np.unique(array)
    unexpected = [v for v in values.tolist() if v not in _VALID_MASK_VALUES]
    if unexpected:
        shown = ", ".join(f"{v:g}" for v in values[:8].tolist())
        raise InputError(
            f"{MASK_KEY!r} has values {{{shown}{', ...' if values.size > 8 else ''}}}; "
            f"expected 0/1 ({IGNORE_INDEX} = ignore)",
            path,
        )
    return array.astype(np.uint8)


def write_h5(path: str | Path, key: str, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write ``array`` as dataset ``key`` of a new HDF5 file ``path``, atomically (a
    temporary name in the same folder, then a rename); ``compress`` uses gzip."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset(key, data=array, compression="gzip" if compress else None)
    return path


def read_patch(ref: PatchRef, n_bands: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Image ``(C, H, W) float32`` and mask ``(H, W) uint8`` (or ``None``) of ``ref``.

    Raises:
        InputError: as :func:`read_image` / :func:`read_mask`, or the mask's ``(H, W)`` differs
            from the image's (named on the mask file).
    """
    image = read_image(ref.image, n_bands=n_bands)
    if ref.mask is None:
        return image, None
    mask = read_mask(ref.mask)
    if mask.shape != image.shape[1:]:
        raise InputError(
            f"mask is {mask.shape[0]}×{mask.shape[1]} but its image {ref.image.name} is "
            f"{image.shape[1]}×{image.shape[2]}",
            ref.mask,
        )
    return image, mask
