"""DP-FCN baseline: a fully convolutional network with a pyramid of multi-scale context.

The paper (§3.3) compares against "DP-FCN (Lv et al., 2020)" but gives no architecture.
Our interpretation, documented here and in ``docs/models.md``:

1. **Encoder** (FCN backbone): ``depth + 1`` conv blocks with 2x2 max-pooling between
   them (the same :class:`~slidemap.models.blocks.DownStep` as the UNet), down to output
   stride ``2**depth`` (8 by default).
2. **Context pyramid** on the deepest map, branches in parallel (PSPNet, Zhao et al. 2017,
   and ASPP, Chen et al. 2018, combined):

   * the map itself;
   * for each bin ``b`` in ``pool_bins``: adaptive average pooling to ``b x b``, 1x1 conv,
     ReLU, bilinear up-sampling back (global to regional context);
   * for each rate ``d`` in ``dilation_rates``: a 3x3 conv with dilation ``d`` (dense
     context at growing receptive fields).

   The branches are concatenated and fused by a 1x1 conv-norm-ReLU.
3. **FCN decoder** (FCN-8s style, Long et al. 2015): at each level, bilinear 2x
   up-sampling, a 1x1 projection to the encoder's width, *addition* of the encoder
   feature, and one 3x3 conv-norm-ReLU; a 1x1 conv gives one logit.

Pooled branches have no normalisation: batch norm over a 1x1 map of a single image has
no statistics. Inputs are padded to a multiple of ``2**depth * lcm(pool_bins)`` so every
pooling bin covers the same number of pixels (exact, and ONNX-exportable).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slidemap.errors import ConfigError
from slidemap.models.blocks import (
    Decoder,
    Encoder,
    SegmentationNet,
    check_common_options,
    conv_norm_act,
    stage_widths,
)
from slidemap.models.registry import register_model


def _positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
    items = tuple(values)
    if not items or not all(isinstance(v, int) and v >= 1 for v in items):
        raise ConfigError(f"option {name}={values!r}: expected a list of integers >= 1")
    return items


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class BinAveragePool(nn.Module):
    """Average pooling to ``bins x bins`` cells: ``(B, C, h, w) -> (B, C, bins, bins)``.

    Equal to ``nn.AdaptiveAvgPool2d(bins)``. When ``bins`` divides ``h`` and ``w`` (always,
    inside :class:`DPFCN`, which pads its input for it) it is written as a reshape and a
    mean, which the ONNX exporter turns into a graph with dynamic height and width (its
    adaptive-pooling symbolic needs static sizes).
    """

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if height % self.bins or width % self.bins:
            return F.adaptive_avg_pool2d(x, self.bins)
        cells = x.reshape(batch, channels, self.bins, height // self.bins, self.bins, width // self.bins)
        return cells.mean(dim=(3, 5))


class ContextPyramid(nn.Module):
    """Parallel pooled and dilated branches, fused: ``(B, C, h, w) -> (B, C, h, w)``."""

    def __init__(
        self,
        channels: int,
        pool_bins: Sequence[int],
        dilation_rates: Sequence[int],
        norm: str,
        dropout: float,
    ):
        super().__init__()
        branch = max(1, channels // 4)
        self.pooled = nn.ModuleList(
            nn.Sequential(
                BinAveragePool(bins),
                nn.Conv2d(channels, branch, kernel_size=1),
                nn.ReLU(inplace=True),
            )
            for bins in pool_bins
        )
        self.dilated = nn.ModuleList(
            conv_norm_act(channels, branch, norm, dilation=rate) for rate in dilation_rates
        )
        n_branches = len(self.pooled) + len(self.dilated)
        self.fuse = nn.Sequential(
            conv_norm_act(channels + n_branches * branch, channels, norm, kernel_size=1),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [x]
        branches += [_upsample_to(pool(x), x) for pool in self.pooled]
        branches += [conv(x) for conv in self.dilated]
        return self.fuse(torch.cat(branches, dim=1))


class FuseUp(nn.Module):
    """FCN decoder step: ``x (B, C_in, h, w)`` + ``skip (B, C_out, 2h, 2w)`` -> ``(B, C_out, 2h, 2w)``."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.refine = conv_norm_act(out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.refine(self.project(_upsample_to(x, skip)) + skip)


@register_model(
    "dpfcn", "DP-FCN (interpreted): FCN encoder, pooled+dilated context pyramid, FCN decoder"
)
class DPFCN(SegmentationNet):
    """Deep-pyramid FCN (our reading of Lv et al. 2020; see the module docstring).

    ``(B, in_channels, H, W) -> (B, 1, H, W)``.

    Args:
        in_channels: input bands + features.
        base_channels: width of the first level (doubles per level).
        depth: number of 2x down-samplings before the context pyramid.
        norm: ``"batch" | "group" | "instance" | "none"``.
        dropout: channel dropout after each encoder block and after the pyramid fusion.
        pool_bins: output sizes of the pyramid's average-pooling branches.
        dilation_rates: dilations of the pyramid's 3x3 branches.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        base_channels: int = 64,
        depth: int = 3,
        norm: str = "batch",
        dropout: float = 0.0,
        pool_bins: Sequence[int] = (1, 2, 4),
        dilation_rates: Sequence[int] = (2, 4),
    ):
        super().__init__(in_channels)
        check_common_options(base_channels, depth, dropout)
        pool_bins = _positive_ints("pool_bins", pool_bins)
        dilation_rates = _positive_ints("dilation_rates", dilation_rates)
        self.size_multiple = 2**depth * math.lcm(*pool_bins)
        widths = stage_widths(base_channels, depth + 1)
        self.encoder = Encoder(in_channels, widths, norm, dropout)
        self.context = ContextPyramid(widths[-1], pool_bins, dilation_rates, norm, dropout)
        self.decoder = Decoder(
            FuseUp(widths[level + 1], widths[level], norm) for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        *skips, deepest = self.encoder(x)
        return self.head(self.decoder(self.context(deepest), skips))
