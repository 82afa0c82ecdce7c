"""UNet and UNet-CBAM (paper §2.1 and §2.3, Eq. 1–4 and 11–13) as one network.

CBAM placements are options, so the paper's model and every ablation between it and the
plain UNet are the same class:

=============  ============  ============  =========
name           cbam_encoder  cbam_decoder  cbam_skip
=============  ============  ============  =========
``unet``       False         False         False
``unet_cbam``  True          True          True
=============  ============  ============  =========

With every placement off no CBAM module exists, so parameter names and outputs equal
those of ``unet``.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from slidemap.models.blocks import (
    AttentionFactory,
    Decoder,
    Encoder,
    SegmentationNet,
    UpStep,
    check_common_options,
    stage_widths,
)
from slidemap.models.cbam import CBAM, GATE_BIAS, AttentionMaps, capture_attention
from slidemap.models.registry import register_model


@register_model(
    "unet_cbam",
    "UNet with CBAM after every encoder and decoder block and on every skip (Eq. 11-12)",
    cbam_encoder=True,
    cbam_decoder=True,
    cbam_skip=True,
)
@register_model("unet", "UNet: conv encoder, bottleneck, transposed-conv decoder, skips (Eq. 1-4)")
class UNet(SegmentationNet):
    """UNet with optional CBAM (Eq. 13: ``F_final = U_CBAM(F)``).

    Encoder: ``depth + 1`` :class:`~slidemap.models.blocks.DownStep` s of widths
    ``base_channels * 2**level``; the deepest is the bottleneck (Eq. 2) and, with
    ``cbam_encoder``, also gets CBAM. Decoder: ``depth``
    :class:`~slidemap.models.blocks.UpStep` s back to full resolution, then a 1x1 conv to
    one logit. ``(B, in_channels, H, W) -> (B, 1, H, W)``; inputs are padded to a
    multiple of ``2**depth`` and cropped back.

    Args:
        in_channels: input bands + features.
        base_channels: width of the first level.
        depth: number of 2x down-samplings.
        norm: ``"batch" | "group" | "instance" | "none"``.
        dropout: channel dropout after each conv block.
        cbam_encoder: CBAM after every encoder block, bottleneck included (Eq. 11).
        cbam_decoder: CBAM after every decoder block (Eq. 11).
        cbam_skip: CBAM on every skip connection before concatenation (Eq. 12).
        reduction: CBAM's MLP reduction ratio ``r`` (Eq. 6).
        spatial_kernel: CBAM's spatial convolution size (Eq. 9).
        gate_bias: CBAM's initial gate logit (gates start open near ``sigmoid(gate_bias)``),
            or ``None`` for PyTorch's default initialisation (see :class:`~slidemap.models.cbam.CBAM`).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        base_channels: int = 64,
        depth: int = 4,
        norm: str = "batch",
        dropout: float = 0.0,
        cbam_encoder: bool = False,
        cbam_decoder: bool = False,
        cbam_skip: bool = False,
        reduction: int = 16,
        spatial_kernel: int = 7,
        gate_bias: float | None = GATE_BIAS,
    ):
        super().__init__(in_channels)
        check_common_options(base_channels, depth, dropout)
        self.size_multiple = 2**depth
        widths = stage_widths(base_channels, depth + 1)
        cbam: AttentionFactory | None = None
        if cbam_encoder or cbam_decoder or cbam_skip:
            cbam = partial(CBAM, reduction=reduction, spatial_kernel=spatial_kernel, gate_bias=gate_bias)
            cbam(widths[0])  # validates reduction and spatial_kernel at construction
        self.encoder = Encoder(
            in_channels, widths, norm, dropout, attention=cbam if cbam_encoder else None
        )
        # decoder[0] is the deepest step: bottleneck -> level depth-1.
        self.decoder = Decoder(
            UpStep(
                widths[level + 1],
                widths[level],
                widths[level],
                norm,
                dropout,
                attention=cbam if cbam_decoder else None,
                skip_attention=cbam if cbam_skip else None,
            )
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        *skips, bottleneck = self.encoder(x)  # bottleneck output z (Eq. 2)
        return self.head(self.decoder(bottleneck, skips))

    def attention_maps(self, x: torch.Tensor) -> dict[str, AttentionMaps]:
        """Run ``x`` and return every CBAM's maps by module name (empty for a plain UNet)."""
        with capture_attention(self) as maps:
            self(x)
        return dict(maps)
