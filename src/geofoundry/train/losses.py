"""Weighted sums of segmentation losses (smp implementations); the ignore value is honoured by every term."""

from __future__ import annotations

import segmentation_models_pytorch.losses as L
import torch
from torch import nn


def _term(name: str, ignore_index: int) -> nn.Module:
    if name == "ce":
        return nn.CrossEntropyLoss(ignore_index=ignore_index)
    if name == "dice":
        return L.DiceLoss("multiclass", ignore_index=ignore_index)
    if name == "focal":
        return L.FocalLoss("multiclass", ignore_index=ignore_index)
    if name == "lovasz":
        return L.LovaszLoss("multiclass", ignore_index=ignore_index)
    if name == "tversky":
        return L.TverskyLoss("multiclass", ignore_index=ignore_index, alpha=0.3, beta=0.7)
    raise ValueError(name)


class WeightedLoss(nn.Module):
    """sum_k weight_k · loss_k(logits, target)."""

    def __init__(self, weights: dict[str, float], ignore_index: int):
        super().__init__()
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.terms = nn.ModuleDict({k: _term(k, ignore_index) for k in self.weights})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * self.terms[k](logits, target) for k, w in self.weights.items())
