"""SegNet baseline (Badrinarayanan et al. 2017; paper §3.3, Antara et al. 2019).

SegNet's decoder up-samples with the *pooling indices* remembered by the encoder's
max-pooling (``max_unpool2d``) instead of learned up-convolutions or copied feature
maps: only the argmax positions travel from encoder to decoder, no skip features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slidemap.models.blocks import (
    ConvBlock,
    Decoder,
    SegmentationNet,
    check_common_options,
    exporting,
    stage_widths,
)
from slidemap.models.registry import register_model


class UnpoolStep(nn.Module):
    """SegNet decoder step: ``max_unpool2d`` by stored indices, then a ConvBlock.

    ``x (B, in_channels, h, w)`` and ``argmax (B, in_channels, h, w)`` (indices into the
    ``2h x 2w`` map) -> ``(B, out_channels, 2h, 2w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float):
        super().__init__()
        self.block = ConvBlock(in_channels, out_channels, norm, dropout)

    def forward(self, x: torch.Tensor, argmax: torch.Tensor) -> torch.Tensor:
        if not exporting():
            return self.block(F.max_unpool2d(x, argmax, kernel_size=2))
        # ONNX has no exportable max_unpool2d here: the same operation as a scatter of each
        # (b, c) plane's values to their flat argmax positions (ScatterElements).
        batch, channels, height, width = x.shape
        flat = x.new_zeros(batch, channels, 4 * height * width)
        flat = flat.scatter(2, argmax.flatten(2), x.flatten(2))
        return self.block(flat.view(batch, channels, 2 * height, 2 * width))


@register_model("segnet", "SegNet: conv encoder, decoder up-sampled by max-pooling indices")
class SegNet(SegmentationNet):
    """Encoder-decoder with index unpooling.

    Encoder: ``depth`` levels, each a :class:`~slidemap.models.blocks.ConvBlock` of width
    ``base_channels * 2**level`` then a 2x2 max-pool that stores its argmax indices.
    Decoder, mirrored: ``max_unpool2d`` by the stored indices, then a ConvBlock down to the
    previous level's width; a 1x1 conv gives one logit.
    ``(B, in_channels, H, W) -> (B, 1, H, W)``; inputs are padded to a multiple of
    ``2**depth`` and cropped back.

    Args:
        in_channels: input bands + features.
        base_channels: width of the first level.
        depth: number of pool/unpool levels.
        norm: ``"batch" | "group" | "instance" | "none"`` (SegNet uses batch norm).
        dropout: channel dropout after each conv block.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        base_channels: int = 64,
        depth: int = 4,
        norm: str = "batch",
        dropout: float = 0.0,
    ):
        super().__init__(in_channels)
        check_common_options(base_channels, depth, dropout)
        self.size_multiple = 2**depth
        widths = stage_widths(base_channels, depth)
        self.encoder = nn.ModuleList(
            ConvBlock(c_in, c_out, norm, dropout)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        # decoder[0] works at the deepest level; each maps width[level] -> width[level - 1].
        self.decoder = Decoder(
            UnpoolStep(widths[level], widths[max(level - 1, 0)], norm, dropout)
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        indices: list[torch.Tensor] = []
        for block in self.encoder:
            x, argmax = F.max_pool2d(block(x), kernel_size=2, return_indices=True)
            indices.append(argmax)
        return self.head(self.decoder(x, indices))
