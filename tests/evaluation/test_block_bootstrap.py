"""Block bootstrap of F1: against a plain-loop transcription, on cases with a known answer,
and the blocks made from ``<row>_<col>`` ids."""

from __future__ import annotations

import numpy as np
import pytest

from slidemap.evaluation.bootstrap import (
    block_bootstrap,
    describe_differences,
    f1_from_counts,
    patch_blocks,
)


def loop_bootstrap(counts: np.ndarray, blocks: np.ndarray, block_strata: np.ndarray,
                   n_resamples: int, seed: int) -> np.ndarray:
    """Independent transcription, one resample and one block at a time in plain Python:
    ``(R, M)`` seed-mean, stratum-mean F1. Draws the same random numbers (per stratum in
    index order, ``integers(0, n, size=(R, n))``)."""
    rng = np.random.default_rng(seed)
    strata = sorted(set(block_strata.tolist()))
    draws = {}
    for k in strata:
        members = [b for b in range(len(block_strata)) if block_strata[b] == k]
        picks = rng.integers(0, len(members), size=(n_resamples, len(members)))
        draws[k] = [[members[j] for j in row] for row in picks]
    n_models, n_seeds = counts.shape[:2]
    out = np.zeros((n_resamples, n_models))
    for r in range(n_resamples):
        for m in range(n_models):
            per_stratum = []
            for k in strata:
                per_seed = []
                for s in range(n_seeds):
                    tp = fp = fn = 0
                    for block in draws[k][r]:
                        for p in range(len(blocks)):
                            if blocks[p] == block:
                                tp += counts[m, s, p, 0]
                                fp += counts[m, s, p, 1]
                                fn += counts[m, s, p, 2]
                    per_seed.append(2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 1.0)
                per_stratum.append(sum(per_seed) / n_seeds)
            out[r, m] = sum(per_stratum) / len(strata)
    return out


def test_intervals_match_a_plain_loop_transcription() -> None:
    rng = np.random.default_rng(0)
    n_models, n_seeds, n_patches = 2, 3, 12
    counts = rng.integers(0, 50, size=(n_models, n_seeds, n_patches, 4))
    ids = [f"{area}/{r}_{c}" for area in ("A", "B") for r, c in
           [(0, 0), (0, 64), (0, 512), (512, 0), (600, 600), (1100, 64)]]
    strata = [i.split("/")[0] for i in ids]
    blocks, block_strata = patch_blocks(ids, block_px=512, strata=strata)
    result = block_bootstrap(["m0", "m1"], counts, blocks, block_strata, n_resamples=60, seed=4)
    samples = loop_bootstrap(counts, blocks, block_strata, 60, seed=4)
    for m, name in enumerate(["m0", "m1"]):
        low, high = np.percentile(samples[:, m], [2.5, 97.5])
        assert result.f1[name].low == pytest.approx(low)
        assert result.f1[name].high == pytest.approx(high)
    low, high = np.percentile(samples[:, 0] - samples[:, 1], [2.5, 97.5])
    diff = result.differences[("m0", "m1")]
    assert (diff.low, diff.high) == (pytest.approx(low), pytest.approx(high))
    # the point estimates: F1 of the data as it is, per seed, averaged over seeds then areas
    by_area = [[f1_from_counts(counts[0, s, [i for i, x in enumerate(strata) if x == a]].sum(0))
                for s in range(n_seeds)] for a in ("A", "B")]
    assert result.f1["m0"].estimate == pytest.approx(np.mean([np.mean(x) for x in by_area]))


def test_two_blocks_give_the_known_percentiles() -> None:
    """Two blocks, one stratum: a resample is (b0, b0), (b0, b1) or (b1, b1) with chances
    1/4, 1/2, 1/4, so the 2.5th and 97.5th percentiles are the F1 of b0 alone and of b1 alone."""
    counts = np.array([[[[8, 2, 2, 0], [2, 4, 4, 0]]]])  # block 0: F1 0.8, block 1: F1 1/3
    blocks, block_strata = patch_blocks(["0_0", "1024_1024"], block_px=512)
    result = block_bootstrap(["m"], counts, blocks, block_strata, n_resamples=4000, seed=1)
    assert result.f1["m"].low == pytest.approx(1 / 3)
    assert result.f1["m"].high == pytest.approx(0.8)
    assert result.f1["m"].estimate == pytest.approx(2 * 10 / (2 * 10 + 6 + 6))


def test_identical_models_differ_by_exactly_nothing() -> None:
    rng = np.random.default_rng(2)
    one = rng.integers(0, 30, size=(2, 9, 4))
    counts = np.stack([one, one])
    blocks, block_strata = patch_blocks([f"{64 * i}_0" for i in range(9)], block_px=128)
    result = block_bootstrap(["a", "b"], counts, blocks, block_strata, n_resamples=200)
    diff = result.differences[("a", "b")]
    assert (diff.estimate, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert not diff.excludes_zero()
    assert "not separated" in describe_differences(result)[0]


def test_a_clearly_better_model_is_said_to_be_ahead() -> None:
    good = np.tile([[[90, 5, 5, 0]]], (1, 20, 1))
    bad = np.tile([[[50, 40, 40, 0]]], (1, 20, 1))
    blocks, block_strata = patch_blocks([f"{64 * i}_0" for i in range(20)], block_px=64)
    result = block_bootstrap(["good", "bad"], np.stack([good, bad]), blocks, block_strata,
                             n_resamples=200)
    assert result.differences[("good", "bad")].excludes_zero()
    assert describe_differences(result)[0].startswith("good is ahead of bad by more than the noise")


def test_blocks_follow_the_grid_and_ids_without_position_are_their_own_block() -> None:
    ids = ["0_0", "64_448", "512_0", "A/0_0", "17", "18"]
    blocks, block_strata = patch_blocks(ids, block_px=512)
    assert blocks[0] == blocks[1]  # same 512 px block
    assert len({blocks[0], blocks[2], blocks[3], blocks[4], blocks[5]}) == 5
    assert block_strata.tolist() == [0] * 5
    _, strata = patch_blocks(["0_0", "0_0"], strata=["A", "B"])
    assert strata.tolist() == [0, 1]


def test_f1_of_nothing_to_find_and_nothing_found_is_one() -> None:
    np.testing.assert_allclose(f1_from_counts(np.array([[0, 0, 0], [1, 1, 0], [0, 3, 1]])),
                               [1.0, 2 / 3, 0.0])
