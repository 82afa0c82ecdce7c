"""Building blocks shared by every network: conv blocks, down/up steps, size padding.

Each network in this package is a :class:`SegmentationNet`: it pads its input to a size
its down-sampling path can halve cleanly, runs :meth:`SegmentationNet.forward_padded`, and
crops the logits back, so callers may pass any ``H, W``. Convolutions follow the paper's
Eq. 1–3 (``f(W * x + b)`` with ``f`` = ReLU); a normalisation layer sits between the
convolution and the activation, as in every modern UNet.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slidemap.errors import ConfigError, InputError

#: normalisation layers a block may use (option ``norm``).
NORMS: tuple[str, ...] = ("batch", "group", "instance", "none")

#: groups of ``norm="group"``: this many, or the largest divisor of the width below it.
GROUP_NORM_GROUPS = 8

#: builds an attention layer (e.g. CBAM) for a feature map of the given channel count.
AttentionFactory = Callable[[int], nn.Module]


def exporting() -> bool:
    """True while tracing, compiling or exporting (ONNX, ``torch.export``): layers then take
    their plain, exportable path instead of an eager-only fast one."""
    return (
        torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
    )


def check_common_options(base_channels: int, depth: int, dropout: float) -> None:
    """Raise :class:`ConfigError` unless width, depth and dropout are usable."""
    if not isinstance(base_channels, int) or base_channels < 1:
        raise ConfigError(f"option base_channels={base_channels!r}: expected an integer >= 1")
    if not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"option depth={depth!r}: expected an integer >= 1")
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"option dropout={dropout!r}: expected a probability in [0, 1)")


def stage_widths(base_channels: int, n_stages: int) -> list[int]:
    """Channel counts of ``n_stages`` resolution levels, doubling at each: ``[b, 2b, 4b, ...]``."""
    return [base_channels * 2**level for level in range(n_stages)]


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The normalisation named ``norm`` (one of :data:`NORMS`) for ``channels`` channels."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(channels, GROUP_NORM_GROUPS), channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "none":
        return nn.Identity()
    raise ConfigError(f"option norm={norm!r} is unknown; choose one of {', '.join(NORMS)}")


def conv_norm_act(
    in_channels: int, out_channels: int, norm: str, kernel_size: int = 3, dilation: int = 1
) -> nn.Sequential:
    """``conv -> norm -> ReLU`` (Eq. 1), 'same' padding; the conv has a bias only without norm."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=dilation * (kernel_size // 2),
                dilation=dilation,
                bias=norm == "none",
            ),
            norm=norm_layer(norm, out_channels),
            act=nn.ReLU(inplace=True),
        )
    )


class ConvBlock(nn.Sequential):
    """Two ``conv3x3 -> norm -> ReLU`` layers, then optional channel dropout.

    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: str = "batch", dropout: float = 0.0
    ):
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv1=conv_norm_act(in_channels, out_channels, norm),
            conv2=conv_norm_act(out_channels, out_channels, norm),
        )
        if dropout > 0:
            layers["dropout"] = nn.Dropout2d(dropout)
        super().__init__(layers)


def _attention_or_identity(factory: AttentionFactory | None, channels: int) -> nn.Module:
    # Identity keeps parameter names the same whether attention is on or off.
    return nn.Identity() if factory is None else factory(channels)


class DownStep(nn.Module):
    """Encoder step: 2x2 max-pool (unless ``downsample=False``), :class:`ConvBlock`, attention.

    ``(B, in_channels, H, W) -> (B, out_channels, H/2, W/2)`` (``H, W`` kept without
    down-sampling). ``attention`` (e.g. CBAM, Eq. 11) refines the block's output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str = "batch",
        dropout: float = 0.0,
        *,
        downsample: bool = True,
        attention: AttentionFactory | None = None,
    ):
        super().__init__()
        self.pool = nn.MaxPool2d(2) if downsample else nn.Identity()
        self.block = ConvBlock(in_channels, out_channels, norm, dropout)
        self.attention = _attention_or_identity(attention, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.block(self.pool(x)))


class UpStep(nn.Module):
    """Decoder step (Eq. 3–4): 2x2 transposed-conv up-sampling, concatenation with the skip
    feature, :class:`ConvBlock`, attention.

    ``x (B, in_channels, H, W)`` and ``skip (B, skip_channels, 2H, 2W)`` ->
    ``(B, out_channels, 2H, 2W)``. ``skip_attention`` (Eq. 12) refines the skip feature
    before it is joined; ``attention`` (Eq. 11) refines the step's output. Eq. 4 writes
    the skip as a sum ``y + x``; like the original UNet we concatenate, which contains the
    sum as a special case of the following convolution.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        norm: str = "batch",
        dropout: float = 0.0,
        *,
        attention: AttentionFactory | None = None,
        skip_attention: AttentionFactory | None = None,
    ):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.skip_attention = _attention_or_identity(skip_attention, skip_channels)
        self.block = ConvBlock(out_channels + skip_channels, out_channels, norm, dropout)
        self.attention = _attention_or_identity(attention, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        joined = torch.cat((self.up(x), self.skip_attention(skip)), dim=1)
        return self.attention(self.block(joined))


class Encoder(nn.ModuleList):
    """``len(widths)`` :class:`DownStep` s, the first without down-sampling.

    ``(B, in_channels, H, W)`` -> one feature per level, level ``i`` being
    ``(B, widths[i], H / 2**i, W / 2**i)``; the last is the deepest (the bottleneck).
    """

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int],
        norm: str = "batch",
        dropout: float = 0.0,
        attention: AttentionFactory | None = None,
    ):
        super().__init__(
            DownStep(c_in, c_out, norm, dropout, downsample=level > 0, attention=attention)
            for level, (c_in, c_out) in enumerate(
                zip([in_channels, *widths[:-1]], widths, strict=True)
            )
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for step in self:
            x = step(x)
            features.append(x)
        return features


class Decoder(nn.ModuleList):
    """Steps ``step(x, skip) -> x`` applied deepest first: ``self[0]`` joins the deepest skip.

    ``forward(x, skips)`` takes one skip per step, shallow-to-deep (as :class:`Encoder`
    returns its features, less the deepest one, which is ``x``); a skip is whatever the
    steps join: a feature map (UNet, DP-FCN) or pooling indices (SegNet).
    """

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        for step, skip in zip(self, reversed(skips), strict=True):
            x = step(x, skip)
        return x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right so ``H`` and ``W`` are multiples of
    ``multiple``: reflect where the image is larger than the pad, else replicate."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


class SegmentationNet(nn.Module):
    """Base of every network: any-size input, one landslide logit per pixel.

    Subclasses set :attr:`size_multiple` (what the down-sampling path needs, usually
    ``2**depth``) and implement :meth:`forward_padded`.
    """

    in_channels: int
    size_multiple: int

    def __init__(self, in_channels: int):
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"in_channels={in_channels!r}: expected an integer >= 1")
        self.in_channels = in_channels

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` with ``H, W`` multiples of :attr:`size_multiple` -> ``(B, 1, H, W)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) float32`` normalised bands -> logits ``(B, 1, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(
                f"model expects a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        logits = self.forward_padded(pad_to_multiple(x, self.size_multiple))
        return logits[..., :height, :width]
