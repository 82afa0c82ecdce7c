"""Prediction on Landslide4Sense ``.h5`` patches, written in the official submission format.

For each ``image_<id>.h5`` the output folder receives ``mask_<id>.h5`` (dataset ``mask``,
``(H, W) uint8``, 1 = landslide, 0 = background: what the Landslide4Sense benchmark
expects) and ``prob_<id>.h5`` (dataset ``prob``, ``(H, W) float32`` landslide
probability), each written atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from slidemap.data.l4s import IMAGE_PREFIX, MASK_PREFIX, SUFFIX, PatchRef, find_patches, read_image
from slidemap.errors import InputError
from slidemap.inference.engine import Engine, prepare_input, sigmoid
from slidemap.inference.postprocess import PostprocessConfig, clean_mask
from slidemap.io.atomic import atomic_path
from slidemap.io.outputs import holding

log = logging.getLogger(__name__)

MASK_KEY = "mask"
PROB_KEY = "prob"
PROB_PREFIX = "prob_"


def is_patch_input(path: Path) -> bool:
    """Whether ``path`` is a ``.h5`` file or a folder (of patches), rather than a raster."""
    return path.is_dir() or path.suffix.lower() == SUFFIX


def patch_refs(inputs: Sequence[str | Path], split: str | None = None) -> list[PatchRef]:
    """Patches named by ``inputs``: ``image_<id>.h5`` files and/or folders in any layout
    :func:`~slidemap.data.l4s.find_patches` knows (masks not required).

    Raises:
        InputError: a file not named ``image_<id>.h5``, or a folder without patches; two
            inputs with the same id.
    """
    refs: list[PatchRef] = []
    for item in map(Path, inputs):
        if item.is_dir():
            refs.extend(find_patches(item, split=split, require_masks=False))
        elif item.name.startswith(IMAGE_PREFIX) and item.name.endswith(SUFFIX):
            if not item.is_file():
                raise InputError("patch file does not exist", item)
            refs.append(PatchRef(item.name[len(IMAGE_PREFIX) : -len(SUFFIX)], item, None))
        else:
            raise InputError(f"is not a patch file ({IMAGE_PREFIX}<id>{SUFFIX}) nor a folder", item)
    seen: dict[str, Path] = {}
    for ref in refs:
        if ref.id in seen:
            raise InputError(f"patch id {ref.id!r} is also given by {seen[ref.id]}; outputs would clash", ref.image)
        seen[ref.id] = ref.image
    return refs


def output_names(refs: Sequence[PatchRef]) -> list[str]:
    """``mask_<id>.h5`` and ``prob_<id>.h5`` of every patch, in order."""
    return [f"{prefix}{ref.id}{SUFFIX}" for ref in refs for prefix in (MASK_PREFIX, PROB_PREFIX)]


def write_h5(path: Path, key: str, array: np.ndarray) -> Path:
    """Write one dataset ``key`` to ``path`` atomically (gzip-compressed)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset(key, data=array, compression="gzip")
    return path


def _batches(refs: Sequence[PatchRef], size: int) -> Iterator[Sequence[PatchRef]]:
    for start in range(0, len(refs), size):
        yield refs[start : start + size]


def predict_patches(
    engine: Engine,
    refs: Sequence[PatchRef],
    out_dir: str | Path,
    *,
    threshold: float | None = None,
    postprocess: PostprocessConfig | None = None,
    batch_size: int = 8,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Predict every patch of ``refs`` into ``out_dir``.

    The outputs are one set (:mod:`slidemap.io.outputs`): every file appears at the end or
    none does; none replaces an input (a ``mask_<id>.h5`` ground truth in the same folder)
    or a file slidemap did not write; earlier outputs are replaced only with ``overwrite``.

    Args:
        engine: the model and its pipeline (patches must hold the pipeline's band set).
        refs: the patches (:func:`patch_refs`).
        out_dir: output folder (created).
        threshold: probability threshold; ``None`` uses the engine's.
        postprocess: mask cleaning as for scenes; ``None`` thresholds only.
        batch_size: patches per forward pass (patches of different sizes go one by one).

    Returns:
        A summary: ``count`` (patches), ``landslide_pixels``, ``threshold``, ``model``,
        ``seconds``, ``outputs`` (the folder).
    """
    out_dir = Path(out_dir)
    threshold = engine.threshold if threshold is None else float(threshold)
    pixel_area_m2 = engine.pipeline.pixel_size_m**2
    n_bands = len(engine.pipeline.band_set)
    started = time.perf_counter()
    # Check every patch before writing anything: a bad file late in the list must not
    # leave a half-finished set of submission files behind.
    for ref in refs:
        read_image(ref.image, n_bands)
    landslide_pixels = 0
    inputs = [path for ref in refs for path in (ref.image, ref.mask)]
    with holding(out_dir, "predict", inputs, overwrite) as folder, folder.output_set():
        folder.claim(output_names(refs))
        for batch in _batches(list(refs), batch_size):
            arrays = [prepare_input(engine, read_image(ref.image, n_bands)) for ref in batch]
            shapes = {x.shape for x in arrays}
            groups = [np.stack(arrays)] if len(shapes) == 1 else [x[None] for x in arrays]
            probabilities = [p[0] for g in groups for p in sigmoid(engine.predict_logits(g))]
            for ref, probability in zip(batch, probabilities, strict=True):
                mask = clean_mask(probability, threshold, postprocess, pixel_area_m2)
                landslide_pixels += int(mask.sum())
                mask_name, prob_name = output_names([ref])
                write_h5(out_dir / mask_name, MASK_KEY, mask)
                write_h5(out_dir / prob_name, PROB_KEY, probability.astype(np.float32))
    return {
        "count": len(refs),
        "landslide_pixels": landslide_pixels,
        "threshold": threshold,
        "model": engine.model_name,
        "postprocess": None if postprocess is None else asdict(postprocess),
        "seconds": round(time.perf_counter() - started, 3),
        "outputs": str(out_dir),
    }
