"""Registry of named presets: ``arch`` in params.yaml picks one. Adding a preset is one entry in ``PRESETS``.

Every preset is built through :func:`~geofoundry.models.compat.make_exportable`, so it trains on any input size
(``min_size`` and up, multiples of 32) and exports to ONNX with dynamic batch, height and width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import segmentation_models_pytorch as smp
import torch

from ..choices import unknown_arch
from ..errors import GeofoundryError
from .compat import make_exportable


@dataclass(frozen=True)
class Preset:
    """An smp architecture with an encoder and its bricks, described for `geofoundry models`."""

    name: str
    arch: str
    encoder: str
    bricks: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    min_size: int = 32  # smallest input side (px) the architecture accepts


_P = Preset
PRESETS: dict[str, Preset] = {p.name: p for p in [
    _P("unet", "Unet", "resnet18", "U-Net decoder with skip connections; ResNet-18 residual encoder"),
    _P("unet-r34", "Unet", "resnet34", "U-Net, skip connections; ResNet-34 encoder"),
    _P("unet-scse", "Unet", "resnet34", "U-Net + concurrent spatial & channel squeeze-excitation (scSE) in the decoder",
       {"decoder_attention_type": "scse"}),
    _P("unet-seresnext50", "Unet", "se_resnext50_32x4d", "U-Net; SE-ResNeXt-50 encoder (grouped conv + squeeze-excitation)"),
    _P("unet-effb0", "Unet", "efficientnet-b0", "U-Net; EfficientNet-B0 encoder (MBConv + squeeze-excitation)"),
    _P("unet-mobilenet", "Unet", "mobilenet_v2", "U-Net; MobileNet-V2 encoder (inverted residuals), light for edge use"),
    _P("unet-convnext", "Unet", "tu-convnext_tiny", "U-Net; ConvNeXt-Tiny encoder from timm (large-kernel depthwise)"),
    _P("unetpp", "UnetPlusPlus", "resnet34", "UNet++: nested dense skip pathways; ResNet-34"),
    _P("deeplab", "DeepLabV3Plus", "resnet34", "DeepLabV3+: atrous spatial pyramid pooling + low-level skip decoder"),
    _P("deeplabv3", "DeepLabV3", "resnet34", "DeepLabV3: atrous spatial pyramid pooling (ASPP), no skip decoder"),
    _P("deeplab-effb3", "DeepLabV3Plus", "efficientnet-b3", "DeepLabV3+ (ASPP + skip); EfficientNet-B3 encoder"),
    _P("fpn", "FPN", "resnet34", "Feature Pyramid Network: top-down pathway with lateral connections"),
    _P("fpn-effb2", "FPN", "efficientnet-b2", "FPN; EfficientNet-B2 encoder"),
    _P("pspnet", "PSPNet", "resnet34", "PSPNet: pyramid pooling module over a dilated encoder"),
    _P("linknet", "Linknet", "resnet18", "LinkNet: light decoder adding (not concatenating) encoder features"),
    _P("manet", "MAnet", "resnet34", "MA-Net: position-wise and multi-scale fusion attention blocks"),
    _P("pan", "PAN", "resnet34", "Pyramid Attention Network: feature pyramid attention + global attention upsample",
       min_size=128),
    _P("upernet", "UPerNet", "resnet34", "UPerNet: pyramid pooling + FPN fusion of all levels"),
    _P("segformer", "Segformer", "mit_b0", "SegFormer: Mix-Transformer encoder (efficient self-attention) + MLP decoder"),
    _P("segformer-b2", "Segformer", "mit_b2", "SegFormer with the larger MiT-B2 encoder"),
    _P("dpt", "DPT", "tu-vit_tiny_patch16_224",
       "DPT: ViT encoder (position embeddings resampled to any input size), reassemble + fusion decoder",
       {"dynamic_img_size": True}),
]}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise GeofoundryError(unknown_arch(name))
    return PRESETS[name]


def build_model(name: str, in_channels: int, classes: int) -> torch.nn.Module:
    """Build a preset with random weights (no download): ``encoder_weights=None``."""
    p = get_preset(name)
    return make_exportable(smp.create_model(p.arch, encoder_name=p.encoder, encoder_weights=None,
                                            in_channels=in_channels, classes=classes, **p.kwargs))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(t.numel() for t in model.parameters())
