"""Exportable replacements for the two smp/timm parts that ONNX (opset 17, dynamic H/W) cannot trace.

* ``nn.AdaptiveAvgPool2d`` to sizes other than 1 (PSPNet, UPerNet pyramid pooling): the legacy exporter needs a
  static input size. :class:`AdaptivePool` computes the same average as two products with pooling matrices
  built from the input's (traced) size, so the graph stays dynamic (smp's PSPBlock also switches to an
  ``area`` interpolation under export, which fails the same way: it keeps its eager path here).
* timm ViT position embeddings with ``dynamic_img_size`` are resampled with antialiased bicubic interpolation,
  which has no ONNX symbol; :func:`_bilinear_pos_embed` resamples them bilinearly instead.

:func:`make_exportable` applies both to a built model; it adds no parameters, so state dicts are unchanged.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.pspnet.decoder import PSPBlock
from torch import nn


def _pool_matrix(n, out: int, like: torch.Tensor) -> torch.Tensor:
    """(out, n) averaging matrix: row i averages [floor(i·n/out), ceil((i+1)·n/out)), as AdaptiveAvgPool does."""
    i = torch.arange(out, device=like.device)
    start = (i * n) // out
    end = ((i + 1) * n + out - 1) // out
    j = torch.arange(n, device=like.device)
    m = ((j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])).to(like.dtype)
    return m / m.sum(1, keepdim=True)


class AdaptivePool(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` as matrix products: exact, and exportable with dynamic H and W."""

    def __init__(self, output_size: int | tuple[int, int]):
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        oh, ow = self.output_size
        rows = _pool_matrix(x.shape[-2], oh, x)
        cols = _pool_matrix(x.shape[-1], ow, x)
        return rows @ x @ cols.transpose(0, 1)


def _bilinear_pos_embed(self, x: torch.Tensor) -> torch.Tensor:
    """timm ``VisionTransformer._pos_embed`` for (B, H, W, C) patch grids, resampling bilinearly."""
    b, h, w, c = x.shape
    n = 0 if self.no_embed_class else self.num_prefix_tokens
    gh, gw = self.patch_embed.grid_size
    grid = self.pos_embed[:, n:].reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)
    prefix = [t.expand(b, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
    x = x.reshape(b, -1, c)
    if self.no_embed_class:
        x = torch.cat([*prefix, x + grid], dim=1)
    else:
        x = torch.cat([*prefix, x], dim=1) + torch.cat([self.pos_embed[:, :n], grid], dim=1)
    return self.pos_drop(x)


def _psp_forward(self, x: torch.Tensor) -> torch.Tensor:
    """smp ``PSPBlock.forward`` without its export-only branch."""
    return F.interpolate(self.pool(x), size=x.shape[2:], mode="bilinear", align_corners=True)


def make_exportable(model: nn.Module) -> nn.Module:
    """Swap non-global adaptive pools and dynamic ViT position embeddings for exportable equivalents."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            size = getattr(child, "output_size", None)
            if isinstance(child, nn.AdaptiveAvgPool2d) and size not in (1, (1, 1)):
                setattr(module, name, AdaptivePool(size))
        if isinstance(module, PSPBlock):
            module.forward = types.MethodType(_psp_forward, module)
        if getattr(module, "dynamic_img_size", False) and getattr(module, "pos_embed", None) is not None:
            module._pos_embed = types.MethodType(_bilinear_pos_embed, module)
    return model
