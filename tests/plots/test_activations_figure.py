"""Layer activations (paper Fig. 3) and the forward-hook capture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slidemap.errors import ConfigError
from slidemap.plots.activations import capture_activation, plot_activations


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 40, 3, padding=1), nn.BatchNorm2d(40), nn.ReLU(), nn.Conv2d(40, 1, 1)
    )


def test_capture_returns_the_layer_output_and_keeps_the_mode() -> None:
    model = _net().train()
    before = model[1].running_mean.clone()
    features = capture_activation(model, "2", torch.rand(2, 3, 8, 8))
    assert features.shape == (2, 40, 8, 8)
    assert (features >= 0).all()  # after the ReLU
    assert model.training
    assert torch.equal(model[1].running_mean, before)  # ran in eval mode


def test_unknown_layer_lists_valid_names() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown layer 'conv2d_6'; valid layer names: 0, 1, 2, 3"
    ):
        capture_activation(_net(), "conv2d_6", torch.rand(1, 3, 8, 8))


def test_tuple_output_yields_its_first_tensor() -> None:
    model = nn.Sequential(nn.MaxPool2d(2, return_indices=True))
    features = capture_activation(model, "0", torch.rand(1, 2, 4, 4))
    assert features.shape == (1, 2, 2, 2) and features.is_floating_point()


def test_grid_shows_at_most_32_channels_titled_with_the_layer() -> None:
    maps = torch.rand(40, 8, 8)
    fig = plot_activations(maps, "encoder.1.conv")
    assert len(fig.axes) == 32
    assert fig.axes[5].get_title() == "ch 5"
    for channel in (0, 5, 31):  # each panel shows its own channel
        np.testing.assert_array_equal(fig.axes[channel].images[0].get_array(), maps[channel].numpy())
    assert "encoder.1.conv" in fig.get_suptitle() and "32 of 40" in fig.get_suptitle()
    assert len(plot_activations(torch.rand(5, 8, 8), "x").axes) == 5
