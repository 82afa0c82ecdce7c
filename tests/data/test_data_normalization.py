"""ChannelStats: streaming statistics equal numpy's over the concatenated data; apply; JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slidemap.data.normalization import ChannelStats, compute_channel_stats
from slidemap.errors import ConfigError, InputError


def arrays(seed: int = 0) -> list[np.ndarray]:
    """Images of different sizes, a large offset (catastrophic cancellation bait) and scale."""
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(3, h, w)) * [[[0.1]], [[5.0]], [[1e-3]]] + [[[1e4]], [[-2.0]], [[0.5]]]).astype(np.float32)
        for h, w in ((8, 8), (5, 11), (1, 1), (16, 4))
    ]


def test_streaming_stats_equal_numpy_over_the_concatenated_pixels() -> None:
    data = arrays()
    stats = compute_channel_stats(iter(data), ["a", "b", "c"])
    pixels = np.concatenate([a.reshape(3, -1) for a in data], axis=1).astype(np.float64)
    np.testing.assert_allclose(stats.mean, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(stats.std, pixels.std(axis=1), rtol=1e-9)
    assert stats.names == ["a", "b", "c"] and stats.mean.dtype == np.float64


def test_apply_normalises_numpy_and_torch_alike() -> None:
    data = arrays()
    stats = compute_channel_stats(data, ["a", "b", "c"])
    normalised = np.concatenate([stats.apply(a).reshape(3, -1) for a in data], axis=1)
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.mean(axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose(normalised.std(axis=1), 1.0, atol=1e-3)
    batch = np.stack([data[0], data[0]])
    tensor = stats.apply(torch.from_numpy(batch))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and tensor.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(tensor[1].numpy(), stats.apply(data[0]), rtol=1e-5, atol=1e-5)
    assert stats.apply(torch.ones(3, 2, 2, dtype=torch.float64)).dtype == torch.float64


def test_constant_channel_is_only_centred() -> None:
    data = [np.stack([np.full((4, 4), 7.0), np.arange(16.0).reshape(4, 4)]).astype(np.float32)]
    stats = compute_channel_stats(data, ["flat", "ramp"])
    assert stats.std[0] == 0.0 and stats.scale[0] == 1.0 and stats.scale[1] == stats.std[1]
    out = stats.apply(data[0] + np.float32(1.0))
    np.testing.assert_allclose(out[0], 1.0)
    assert np.isfinite(out).all()


def test_save_and_load_round_trip_exactly(tmp_path: Path) -> None:
    stats = compute_channel_stats(arrays(), ["a", "b", "c"])
    path = stats.save(tmp_path / "sub" / "stats.json")
    loaded = ChannelStats.load(path)
    assert loaded == stats
    assert ChannelStats.from_dict(stats.to_dict()) == stats
    assert not list(path.parent.glob(".slidemap-tmp-*"))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("{not json", "cannot read"), ("[1, 2]", "not a normalisation"),
     ('{"names": ["a"], "mean": [0.0]}', "malformed"), ('{"names": ["a"], "mean": [0, 1], "std": [1, 1]}', "disagree")],
)
def test_load_bad_file_names_it(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "stats.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        ChannelStats.load(path)
    assert info.value.path == path


def test_errors_for_bad_arrays_and_channel_mismatch() -> None:
    with pytest.raises(InputError, match="no image pixels"):
        compute_channel_stats([], ["a"])
    with pytest.raises(InputError, match=r"array #1 has shape \(2, 4, 4\); expected \(3, H, W\)"):
        compute_channel_stats([np.zeros((3, 4, 4)), np.zeros((2, 4, 4))], ["a", "b", "c"])
    with pytest.raises(InputError, match="NaN/Inf"):
        compute_channel_stats([np.full((1, 2, 2), np.nan)], ["a"])
    stats = ChannelStats(["a"], [0.0], [1.0])
    with pytest.raises(InputError, match="expect"):
        stats.apply(np.zeros((2, 4, 4)))
    with pytest.raises(ConfigError, match="finite"):
        ChannelStats(["a"], [np.nan], [1.0])
