"""Segmentation networks: UNet / UNet-CBAM, SegNet, DP-FCN, their blocks and the registry.

``build_model(name, in_channels, **options)`` is the one way the rest of slidemap makes a
model; ``list_models()`` names them (``unet, unet_cbam, segnet, dpfcn``).
"""

from slidemap.models.blocks import NORMS, ConvBlock, DownStep, SegmentationNet, UpStep
from slidemap.models.cbam import CBAM, AttentionMaps, capture_attention
from slidemap.models.dpfcn import DPFCN
from slidemap.models.profile import ModelProfile, count_flops, count_parameters, profile_model
from slidemap.models.registry import ModelInfo, build_model, list_models, model_info, register_model
from slidemap.models.segnet import SegNet
from slidemap.models.unet import UNet

__all__ = [
    "CBAM",
    "DPFCN",
    "NORMS",
    "AttentionMaps",
    "ConvBlock",
    "DownStep",
    "ModelInfo",
    "ModelProfile",
    "SegNet",
    "SegmentationNet",
    "UNet",
    "UpStep",
    "build_model",
    "capture_attention",
    "count_flops",
    "count_parameters",
    "list_models",
    "model_info",
    "profile_model",
    "register_model",
]
