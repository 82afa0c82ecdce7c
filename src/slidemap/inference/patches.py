"""Prediction on Landslide4Sense ``.h5`` patches, written in the official submission format.

For each ``image_<id>.h5`` the output folder receives ``mask_<id>.h5`` (dataset ``mask``,
``(H, W) uint8``, 1 = landslide, 0 = background: what the Landslide4Sense benchmark
expects) and ``prob_<id>.h5`` (dataset ``prob``, ``(H, W) float32`` landslide
probability), each written atomically.

:func:`patch_outputs` is the one loop that makes a patch's probability and mask; ``predict``
writes what it yields and ``evaluate`` scores it, so the scores are those of the files.
Masks are thresholded only unless a post-processing is given: the submission format is the
network's own decision per pixel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slidemap.data.l4s import (
    IMAGE_PREFIX,
    MASK_KEY,
    SUFFIX,
    PatchRef,
    find_patches,
    mask_file_name,
    read_image,
    read_patch,
    write_h5,
)
from slidemap.errors import InputError
from slidemap.inference.postprocess import PostprocessConfig, clean_mask
from slidemap.inference.predictor import Predictor
from slidemap.io.outputs import holding

log = logging.getLogger(__name__)

#: ``prob_<id>.h5`` files, dataset ``prob``: the probability next to each submission mask.
PROB_PREFIX = "prob_"
PROB_KEY = "prob"


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
    return [name for ref in refs for name in (mask_file_name(ref.id), f"{PROB_PREFIX}{ref.id}{SUFFIX}")]


def _batches(refs: Sequence[PatchRef], size: int) -> Iterator[Sequence[PatchRef]]:
    for start in range(0, len(refs), size):
        yield refs[start : start + size]


@dataclass
class PatchOutput:
    """One patch through the model.

    Attributes:
        ref: the patch.
        bands: ``(C, H, W) float32`` band stack in stored units, as read.
        truth: ``(H, W) uint8`` {0, 1, 255} mask, when asked for (``None`` otherwise).
        probability: ``(H, W) float32`` landslide probability.
        mask: ``(H, W) uint8`` the predicted mask (1 landslide, 0 background): what
            ``predict`` writes as ``mask_<id>.h5``.
    """

    ref: PatchRef
    bands: np.ndarray
    truth: np.ndarray | None
    probability: np.ndarray
    mask: np.ndarray


def patch_outputs(
    predictor: Predictor,
    refs: Sequence[PatchRef],
    *,
    threshold: float | None = None,
    postprocess: PostprocessConfig | None = None,
    batch_size: int = 8,
    with_truth: bool = False,
) -> Iterator[PatchOutput]:
    """Probability and mask of every patch of ``refs``, in order, batch by batch.

    Args:
        predictor: the model (patches must hold its pipeline's band set).
        refs: the patches.
        threshold: probability threshold of the mask; ``None`` uses the predictor's.
        postprocess: mask cleaning as for scenes; ``None`` thresholds only.
        batch_size: patches per forward pass (patches of different sizes go one by one).
        with_truth: also read each patch's mask (``ref.mask`` must exist; its size is checked).

    Raises:
        InputError: a patch (or its mask) is unreadable or holds another band set.
    """
    threshold = predictor.threshold if threshold is None else float(threshold)
    pixel_area_m2 = predictor.pipeline.pixel_size_m**2
    n_bands = len(predictor.pipeline.source_band_set)  # patch files hold every band of the set
    for batch in _batches(list(refs), batch_size):
        read = [read_patch(ref, n_bands) if with_truth else (read_image(ref.image, n_bands), None)
                for ref in batch]
        inputs = [predictor.prepare(bands) for bands, _ in read]
        shapes = {x.shape for x in inputs}
        groups = [np.stack(inputs)] if len(shapes) == 1 else [x[None] for x in inputs]
        probabilities = [p for g in groups for p in predictor.probabilities(g)]
        for ref, (bands, truth), probability in zip(batch, read, probabilities, strict=True):
            mask = clean_mask(probability, threshold, postprocess, pixel_area_m2)
            yield PatchOutput(ref, bands, truth, probability.astype(np.float32, copy=False), mask)


def predict_patches(
    predictor: Predictor,
    refs: Sequence[PatchRef],
    out_dir: str | Path,
    *,
    threshold: float | None = None,
    postprocess: PostprocessConfig | None = None,
    batch_size: int = 8,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Predict every patch of ``refs`` into ``out_dir`` (:func:`patch_outputs`).

    The outputs are one set (:mod:`slidemap.io.outputs`): every file appears at the end or
    none does; none replaces an input (a ``mask_<id>.h5`` ground truth in the same folder)
    or a file slidemap did not write; earlier outputs are replaced only with ``overwrite``.

    Args:
        predictor: the model (patches must hold its pipeline's band set).
        refs: the patches (:func:`patch_refs`).
        out_dir: output folder (created).
        threshold: probability threshold; ``None`` uses the predictor's.
        postprocess: mask cleaning as for scenes; ``None`` (the default of the
            submission format) thresholds only.
        batch_size: patches per forward pass.

    Returns:
        A summary: ``count`` (patches), ``landslide_pixels``, ``threshold``,
        ``threshold_rule``, ``model``, ``engine``, ``tta``, ``checkpoint``, ``ensemble_size``,
        ``postprocess``, ``seconds``, ``outputs`` (the folder).
    """
    out_dir = Path(out_dir)
    given = threshold
    threshold = predictor.threshold if threshold is None else float(threshold)
    n_bands = len(predictor.pipeline.source_band_set)  # patch files hold every band of the set
    started = time.perf_counter()
    # Check every patch before writing anything: a bad file late in the list must not
    # leave a half-finished set of submission files behind.
    for ref in refs:
        read_image(ref.image, n_bands)
    landslide_pixels = 0
    inputs = [path for ref in refs for path in (ref.image, ref.mask)]
    with holding(out_dir, "predict", inputs, overwrite) as folder, folder.output_set():
        folder.claim(output_names(refs))
        for output in patch_outputs(predictor, refs, threshold=threshold, postprocess=postprocess,
                                    batch_size=batch_size):
            landslide_pixels += int(output.mask.sum())
            mask_name, prob_name = output_names([output.ref])
            write_h5(out_dir / mask_name, MASK_KEY, output.mask, compress=True)
            write_h5(out_dir / prob_name, PROB_KEY, output.probability, compress=True)
    return {
        "count": len(refs),
        "landslide_pixels": landslide_pixels,
        "threshold": threshold,
        "threshold_rule": predictor.threshold_rule(given),
        "model": predictor.model_name,
        **predictor.record(),
        "postprocess": None if postprocess is None else asdict(postprocess),
        "seconds": round(time.perf_counter() - started, 3),
        "outputs": str(out_dir),
    }
