"""Auxiliary input features (paper §2.4): spectral indices and terrain, as pure array functions.

``FEATURES`` / ``get_feature`` / ``list_features`` name them; :class:`InputPipeline` stacks
bands and chosen features into a model's input.
"""

from slidemap.config.schema import PAPER_FEATURES
from slidemap.features.pipeline import InputPipeline
from slidemap.features.registry import (
    FEATURES,
    Feature,
    get_feature,
    list_features,
    register_feature,
)

__all__ = [
    "FEATURES",
    "PAPER_FEATURES",
    "Feature",
    "InputPipeline",
    "get_feature",
    "list_features",
    "register_feature",
]
