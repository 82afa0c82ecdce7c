"""Per-channel normalisation statistics: computed once on the training split, stored in
checkpoints, applied identically in training, evaluation and prediction.

Statistics are the population mean and standard deviation (``ddof=0``) over every pixel of
every training image, accumulated in one streaming pass in float64 with the pairwise update of
Chan, Golub & LeVeque (1983), so they match ``np.mean``/``np.std`` of the concatenated data
without holding it in memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from slidemap.errors import ConfigError, InputError
from slidemap.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

#: A channel whose std is below ``STD_FLOOR * max(1, |mean|)`` is treated as constant and is
#: only centred (divided by 1), as scikit-learn's StandardScaler does: dividing by a tiny std
#: would blow up any deviation seen at inference.
STD_FLOOR = 1e-6

ArrayT = TypeVar("ArrayT")


@dataclass
class ChannelStats:
    """Mean and standard deviation per channel.

    Attributes:
        names: channel names, in order (``InputPipeline.channel_names``).
        mean: ``(C,) float64``. std: ``(C,) float64``, population std, >= 0.
    """

    names: list[str]
    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        self.mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if not (len(self.names) == self.mean.size == self.std.size):
            raise ConfigError(
                f"normalisation statistics disagree: {len(self.names)} names, "
                f"{self.mean.size} means, {self.std.size} stds"
            )
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()) or (self.std < 0).any():
            raise ConfigError("normalisation statistics must be finite with std >= 0")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ChannelStats)
            and self.names == other.names
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.std, other.std)
        )

    @property
    def scale(self) -> np.ndarray:
        """The divisor per channel: ``std``, or 1 for constant channels (see :data:`STD_FLOOR`)."""
        constant = self.std < STD_FLOOR * np.maximum(1.0, np.abs(self.mean))
        return np.where(constant, 1.0, self.std)

    def apply(self, x: ArrayT) -> ArrayT:
        """``(x − mean) / scale`` per channel.

        Args:
            x: ``(C, H, W)`` or ``(B, C, H, W)``, a numpy array or a torch tensor.

        Returns:
            The same kind, shape and device; numpy results are float32, tensors keep a floating dtype (integer tensors become float32).

        Raises:
            InputError: the channel count differs from the statistics'.
        """
        ndim = len(x.shape)  # type: ignore[attr-defined]
        channels = x.shape[-3] if ndim in (3, 4) else None  # type: ignore[attr-defined]
        if channels != len(self.names):
            raise InputError(
                f"input has shape {tuple(x.shape)}; normalisation statistics expect "  # type: ignore[attr-defined]
                f"(C, H, W) or (B, C, H, W) with C = {len(self.names)} ({', '.join(self.names)})"
            )
        # The mean is subtracted as two float32 terms (its float32 value, then the rounding
        # remainder): one float32 term of a mean of 1e4 is off by ~5e-4, a bias of 0.005
        # after dividing by a std of 0.1. Each subtraction is then nearly exact.
        mean_hi = self.mean.astype(np.float32)
        terms = [mean_hi, (self.mean - mean_hi).astype(np.float32), self.scale.astype(np.float32)]
        if isinstance(x, np.ndarray):
            hi, lo, scale = (t[:, None, None] for t in terms)
            out = np.subtract(x, hi, dtype=np.float32)  # the one new array; then in place
            out -= lo
            out /= scale
            return out  # type: ignore[return-value]
        import torch

        tensor = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
        dtype = tensor.dtype if tensor.is_floating_point() else torch.float32
        hi, lo, scale = (torch.as_tensor(t, dtype=dtype, device=tensor.device)[:, None, None] for t in terms)
        return ((tensor.to(dtype) - hi) - lo) / scale  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/checkpoint safe); floats round-trip exactly."""
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelStats:
        """Inverse of :meth:`to_dict`; :class:`ConfigError` if malformed."""
        try:
            return cls(list(data["names"]), np.asarray(data["mean"], dtype=np.float64),
                       np.asarray(data["std"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed normalisation statistics ({exc!r})") from None

    def save(self, path: str | Path) -> Path:
        """Write JSON to ``path`` atomically; returns the path."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ChannelStats:
        """Read statistics written by :meth:`save`; :class:`InputError` naming the file if bad."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("statistics file does not exist", path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read normalisation statistics ({exc})", path) from None
        if not isinstance(data, Mapping):
            raise InputError("is not a normalisation statistics object", path)
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise InputError(exc.problem, path) from None


def compute_channel_stats(arrays: Iterable[np.ndarray], names: Sequence[str]) -> ChannelStats:
    """Per-channel mean and std over all pixels of ``arrays``, in one streaming pass.

    Args:
        arrays: ``(C, H, W)`` arrays (sizes may differ), any real dtype; finite values only
            (the output of an ``InputPipeline`` is).
        names: the ``C`` channel names.

    Returns:
        :class:`ChannelStats` equal (to float64 rounding) to ``np.mean``/``np.std`` over the
        arrays concatenated along their pixels.

    Raises:
        InputError: no arrays, a wrong channel count, or non-finite values.
    """
    n_channels = len(names)
    count = 0
    mean = np.zeros(n_channels, dtype=np.float64)
    m2 = np.zeros(n_channels, dtype=np.float64)  # sum of squared deviations from the mean
    for number, array in enumerate(arrays):
        a = np.asarray(array)
        if a.ndim != 3 or a.shape[0] != n_channels:
            raise InputError(
                f"array #{number} has shape {a.shape}; expected ({n_channels}, H, W) for channels "
                f"{', '.join(names)}"
            )
        pixels = a.reshape(n_channels, -1).astype(np.float64)
        if not np.isfinite(pixels).all():
            raise InputError(f"array #{number} has NaN/Inf values; cannot compute statistics")
        n_b = pixels.shape[1]
        if n_b == 0:
            continue
        mean_b = pixels.mean(axis=1)
        m2_b = ((pixels - mean_b[:, None]) ** 2).sum(axis=1)
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        count = total
    if count == 0:
        raise InputError("no image pixels to compute normalisation statistics from")
    std = np.sqrt(np.maximum(m2 / count, 0.0))
    stats = ChannelStats(list(names), mean, std)
    constant = [n for n, sd, sc in zip(stats.names, stats.std, stats.scale, strict=True) if sd != sc]
    if constant:
        log.warning("channels %s are constant over the data; they are only centred", constant)
    return stats
