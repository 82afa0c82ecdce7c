"""Convolutional Block Attention Module (CBAM), paper §2.2–2.3, Eq. 5–12.

CBAM refines a feature map ``F`` first along channels (Eq. 5–7), then along space
(Eq. 8–10): ``F' = Ms(Mc(F) * F) * (Mc(F) * F)`` (Eq. 11). It is a layer usable anywhere;
:class:`~slidemap.models.unet.UNet` switches it on per placement.

On the CPU, a ``channels_last`` float32 or bfloat16 input runs through one fused kernel
(:mod:`slidemap.models.native.cbam`: forward, and backward under autograd), which passes
over the feature map three times instead of the 6-8 passes of separate framework ops; the
kernel is compiled on first use and is optional. Everywhere else (no compiler, NCHW
input, GPU, float64, ONNX export or ``torch.compile``) the same maths runs as framework ops,
written for speed too: the two pooled vectors go through the shared MLP in one call, the
channel-refined map is the only full-size temporary, and outside autograd the spatial
weighting is applied in place. ``channels_last`` inputs stay ``channels_last``.

Attention maps are not kept by default; :func:`capture_attention` records them for tests
and figures without any cost on the normal path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slidemap.errors import ConfigError
from slidemap.models.blocks import exporting
from slidemap.models.native import cbam as native_cbam

#: Below this many channels, a ``channels_last`` map's channel max and mean are taken by a
#: max tree and a mat-vec product (faster there than torch's reductions; docs/speed.md).
TREE_MAX_CHANNELS = 32

#: Initial logit of CBAM's gates: each starts near sigmoid(2) = 0.88 (see :class:`CBAM`).
GATE_BIAS = 2.0


@dataclass(frozen=True)
class AttentionMaps:
    """The two attention maps of one CBAM call, detached.

    ``channel``: ``Mc`` ``(B, C, 1, 1)`` (Eq. 6); ``spatial``: ``Ms`` ``(B, 1, H, W)`` (Eq. 9);
    both strictly inside (0, 1).
    """

    channel: torch.Tensor
    spatial: torch.Tensor


class ChannelAttention(nn.Module):
    """Channel attention map ``Mc`` (Eq. 5–6): ``(B, C, H, W) -> (B, C, 1, 1)`` in (0, 1).

    One MLP (two 1x1 convolutions ``W0``: C -> C/r and ``W1``: C/r -> C, ReLU between)
    is shared by the global average- and max-pooled vectors; the two results are summed
    and squashed by a sigmoid.

    Eq. 6 of the paper reads ``sigma(W1 ReLU(W0 F_avg) + W0 ReLU(W1 F_max))``, swapping
    ``W0`` and ``W1`` in the second term, which is not even shape-consistent. That is a
    typo of canonical CBAM (Woo et al., ECCV 2018), which we implement:
    ``Mc = sigma(W1 ReLU(W0 F_avg) + W1 ReLU(W0 F_max))``.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc0=nn.Conv2d(channels, hidden, kernel_size=1),  # W0
                relu=nn.ReLU(inplace=True),
                fc1=nn.Conv2d(hidden, channels, kernel_size=1),  # W1
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Eq. 5: F_avg and F_max side by side as a (B, C, 1, 2) map, so the shared MLP
        # runs once for both; summing the two columns is the "+" of Eq. 6.
        if x.is_contiguous():
            f_avg, f_max = x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
        else:  # channels_last: amax over (H, W) is slow there, the pooling kernels are not
            f_avg, f_max = F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)
        pooled = torch.cat((f_avg, f_max), dim=3)
        return torch.sigmoid(self.mlp(pooled).sum(dim=3, keepdim=True))


def _channel_mean_max(x: torch.Tensor) -> torch.Tensor:
    """Channel-wise mean and max of ``(B, C, H, W)`` stacked as ``(B, 2, H, W)`` (Eq. 8)."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if channels_last and torch.is_grad_enabled() and x.requires_grad:
        # Under autograd the tree below costs 3-4x a max with indices (its backward is a
        # chain of small ops; a max's is one scatter), measured fwd+bwd (docs/speed.md).
        return torch.stack((x.mean(dim=1), torch.max(x, dim=1).values), dim=1)
    if not channels_last or x.shape[1] >= TREE_MAX_CHANNELS:
        return torch.stack((x.mean(dim=1), x.amax(dim=1)), dim=1)
    # channels_last with few channels: C is the innermost axis, where torch's CPU reductions
    # are ~2x slower than a mat-vec product (mean) or a halving tree of element-wise maxima
    # (max); from 32 channels on, the plain reductions are 2-3x faster than the tree.
    batch, channels, height, width = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, channels)  # (B*H*W, C), a view
    mean = rows @ rows.new_full((channels,), 1.0 / channels)
    peak = rows
    while peak.shape[1] > 1:
        half = peak.shape[1] // 2
        folded = torch.maximum(peak[:, :half], peak[:, half : 2 * half])
        peak = torch.cat((folded, peak[:, 2 * half :]), dim=1) if peak.shape[1] % 2 else folded
    size = (batch, height, width)
    # stacked last, so the (B, 2, H, W) view is channels_last, as the 7x7 conv wants it
    return torch.stack((mean.view(size), peak.view(size)), dim=3).permute(0, 3, 1, 2)


class SpatialAttention(nn.Module):
    """Spatial attention map ``Ms`` (Eq. 8–9): ``(B, C, H, W) -> (B, 1, H, W)`` in (0, 1).

    Channel-wise mean and max (two ``(B, H, W)`` reductions, no full-size copy) are
    stacked and passed through one ``k x k`` convolution (k = 7 in the paper) and a sigmoid.
    The convolution is an ordinary ``nn.Conv2d(2, 1, k)`` (state-dict keys ``conv.weight``,
    ``conv.bias``), run on a ``channels_last`` stats map: oneDNN's kernel for two input
    channels is ~2x faster there than on NCHW or as a depthwise conv with the batch folded
    into channels (docs/speed.md).
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = _channel_mean_max(x)  # (B, 2, H, W), Eq. 8
        if exporting():
            return torch.sigmoid(self.conv(stats))  # Eq. 9, the plain exportable graph
        logits = self.conv(stats.contiguous(memory_format=torch.channels_last))  # Eq. 9
        return torch.sigmoid_(logits)


class CBAM(nn.Module):
    """Channel then spatial attention (Eq. 11): ``(B, C, H, W) -> (B, C, H, W)``.

    Eq. 12 (skip connections) writes ``Mc * Ms * F``; the paper describes the same module
    there, so skip connections use this same channel-then-spatial order.

    **Initialisation.** Both maps multiply the features, so with PyTorch's default
    initialisation (gates near 0.5, each with its own random tilt) every CBAM halves or
    quarters its input, and a UNet-CBAM, with CBAM after every block and on every skip,
    starts far from the UNet it refines: on the demo data its first epochs stall near the
    loss of a constant prediction and its score after 20 epochs depends on the seed (val F1
    0.86 or 0.96, UNet 0.94; docs/models.md). ``gate_bias`` starts each gate open instead:
    the biases of the spatial convolution and of ``W1`` are set so that ``Mc`` and ``Ms``
    begin near ``sigmoid(gate_bias)`` (0.88 for the default 2), and attention is learnt as a
    departure from passing the features through (0.94–0.97 over three seeds, a val F1 of
    0.53–0.64 after the first epoch instead of 0.09–0.48). The weights keep their default
    initialisation, so the maps still vary with the input from the first step.
    ``gate_bias=None`` keeps PyTorch's default initialisation.

    Args:
        channels: ``C`` of the feature map.
        reduction: ``r``, the MLP's bottleneck ratio (hidden width ``max(1, C // r)``).
        spatial_kernel: side of the spatial-attention convolution (odd; 7 in the paper).
        gate_bias: initial logit of both gates (see above), or ``None``.
    """

    def __init__(
        self, channels: int, reduction: int = 16, spatial_kernel: int = 7,
        gate_bias: float | None = GATE_BIAS,
    ):
        super().__init__()
        if not isinstance(reduction, int) or reduction < 1:
            raise ConfigError(f"option reduction={reduction!r}: expected an integer >= 1")
        if not isinstance(spatial_kernel, int) or spatial_kernel < 1 or spatial_kernel % 2 == 0:
            raise ConfigError(
                f"option spatial_kernel={spatial_kernel!r}: expected an odd integer >= 1"
            )
        if gate_bias is not None and (isinstance(gate_bias, bool) or not isinstance(gate_bias, int | float)):
            raise ConfigError(f"option gate_bias={gate_bias!r}: expected a number or null")
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(spatial_kernel)
        if gate_bias is not None:
            with torch.no_grad():
                # W1's bias enters Eq. 6 twice (once per pooled vector), hence the half
                self.channel.mlp.fc1.bias.fill_(float(gate_bias) / 2)
                self.spatial.conv.bias.fill_(float(gate_bias))
        #: set by :func:`capture_attention`; holds the last call's maps while set.
        self.keep_maps = False
        self.last_maps: AttentionMaps | None = None
        #: run the fused kernel where it applies (see the module docstring).
        self.fused = True

    def _fused_applies(self, x: torch.Tensor) -> bool:
        return (self.fused and native_cbam.supports(x) and not exporting()
                and native_cbam.library() is not None)

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        fc0, fc1, conv = self.channel.mlp.fc0, self.channel.mlp.fc1, self.spatial.conv
        params = (fc0.weight, fc0.bias, fc1.weight, fc1.bias, conv.weight, conv.bias)
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            out, channel_map, spatial_map = native_cbam.FusedCBAMFunction.apply(x, *params)
        else:
            result = native_cbam.forward(x, native_cbam.CBAMWeights.of(*params))
            out, channel_map, spatial_map = result.out, result.cm, result.sm
        if self.keep_maps:
            batch, channels, height, width = x.shape
            self.last_maps = AttentionMaps(channel_map.view(batch, channels, 1, 1),
                                           spatial_map.view(batch, 1, height, width))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused_applies(x):
            return self._forward_fused(x)
        channel_map = self.channel(x)
        refined = x * channel_map  # Eq. 7, the only full-size temporary
        spatial_map = self.spatial(refined)
        if self.keep_maps:
            self.last_maps = AttentionMaps(channel_map.detach(), spatial_map.detach())
        if torch.is_grad_enabled():
            return refined * spatial_map  # Eq. 10; autograd needs `refined` intact
        return refined.mul_(spatial_map)  # Eq. 10 in place: no second full-size tensor


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[dict[str, AttentionMaps]]:
    """Record the attention maps of every CBAM in ``model`` while the block runs.

    Yields a dict filled by each forward pass: qualified module name (e.g.
    ``"encoder.0.attention"``) -> :class:`AttentionMaps` of that module's last call::

        with capture_attention(model) as maps:
            model(x)
        maps["decoder.0.skip_attention"].spatial  # (B, 1, H, W)
    """
    modules = {name: m for name, m in model.named_modules() if isinstance(m, CBAM)}
    maps: dict[str, AttentionMaps] = {}
    hooks = []

    def _collector(name: str):  # noqa: ANN202 - forward-hook signature
        def hook(module: CBAM, _inputs: object, _output: object) -> None:
            if module.last_maps is not None:
                maps[name] = module.last_maps

        return hook

    for name, module in modules.items():
        module.keep_maps = True
        hooks.append(module.register_forward_hook(_collector(name)))
    try:
        yield maps
    finally:
        for hook in hooks:
            hook.remove()
        for module in modules.values():
            module.keep_maps = False
            module.last_maps = None
