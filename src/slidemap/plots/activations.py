"""Activations of one layer for one input (the paper's Fig. 3, 32 maps of 'conv2d_6')."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from slidemap.errors import ConfigError
from slidemap.plots.style import panel_grid


def capture_activation(model: nn.Module, layer_name: str, x: torch.Tensor) -> torch.Tensor:
    """Output of the submodule ``layer_name`` when ``model`` runs on ``x``.

    The model runs once in eval mode without gradients (its train/eval mode is restored
    afterwards, so BatchNorm statistics are not touched), with a forward hook on the layer.

    Args:
        model: any network; layer names are those of ``model.named_modules()``, e.g.
            ``"encoder.2.conv"``.
        layer_name: the submodule to observe.
        x: (B, C, H, W) input batch, on the model's device.

    Returns:
        The layer's output detached on the CPU, e.g. (B, C', H', W'); for a layer that
        returns a tuple (SegNet pooling: values and indices), its first tensor.

    Raises:
        ConfigError: ``layer_name`` is not a submodule; the message lists the valid names.
    """
    modules = dict(model.named_modules())
    modules.pop("", None)
    if layer_name not in modules:
        raise ConfigError(
            f"unknown layer {layer_name!r}; valid layer names: {', '.join(modules) or '(none)'}"
        )
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple[object, ...], output: object) -> None:
        if isinstance(output, (tuple, list)):
            output = next(item for item in output if isinstance(item, torch.Tensor))
        captured.append(output.detach().cpu())

    was_training = model.training
    handle = modules[layer_name].register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
        model.train(was_training)
    if not captured:
        raise ConfigError(f"layer {layer_name!r} is not used in the forward pass of this model")
    return captured[0]


def plot_activations(
    features: torch.Tensor | np.ndarray,
    layer_name: str,
    max_channels: int = 32,
    max_cols: int = 8,
    cmap: str = "viridis",
) -> Figure:
    """Grid of the first ``max_channels`` channel maps of one layer's output.

    Args:
        features: (C, H, W) activations of one sample (e.g. ``capture_activation(...)[0]``).
        layer_name: shown as the figure title.
        max_channels: how many channels to draw (the paper shows 32).
        max_cols: maps per row.
        cmap: Matplotlib colour map; each map is scaled to its own min-max.

    Returns:
        Figure with ``min(C, max_channels)`` axes titled ``"ch <index>"``.
    """
    maps = torch.as_tensor(features).detach().cpu().float().numpy()
    if maps.ndim != 3:
        raise ValueError(f"features must be (C, H, W) for one sample, got shape {maps.shape}")
    n = min(maps.shape[0], max_channels)
    fig, axes = panel_grid(n, max_cols, panel_size=(1.6, 1.6))
    for channel, ax in enumerate(axes):
        ax.imshow(maps[channel], cmap=cmap, interpolation="nearest")
        ax.set_title(f"ch {channel}", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Activations of layer '{layer_name}' ({n} of {maps.shape[0]} channels)")
    return fig
