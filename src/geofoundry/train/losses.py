"""Weighted sums of segmentation losses (smp implementations); the ignore value is honoured by every term.

Class weights (one per output class, background first) scale each class's part of a term: cross-entropy weighs each
pixel by its true class; Dice, Tversky and Focal average their per-class terms with the weights (smp's
``class_weights``). Lovász takes none.
"""

from __future__ import annotations

import segmentation_models_pytorch.losses as L
import torch
from torch import nn

from ..config import CLASS_WEIGHTED_LOSSES


def _term(name: str, ignore_index: int, class_weights: list[float] | None) -> nn.Module:
    if class_weights is not None and name not in CLASS_WEIGHTED_LOSSES:
        raise ValueError(f"loss {name!r} takes no class weights (those that do: {', '.join(CLASS_WEIGHTED_LOSSES)})")
    if name == "ce":
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        return nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)
    if name == "dice":
        return L.DiceLoss("multiclass", ignore_index=ignore_index, class_weights=class_weights)
    if name == "focal":
        return L.FocalLoss("multiclass", ignore_index=ignore_index, class_weights=class_weights)
    if name == "lovasz":
        return L.LovaszLoss("multiclass", ignore_index=ignore_index)
    if name == "tversky":
        return L.TverskyLoss("multiclass", ignore_index=ignore_index, alpha=0.3, beta=0.7, class_weights=class_weights)
    raise ValueError(name)


class WeightedLoss(nn.Module):
    """sum_k weight_k · loss_k(logits, target); ``class_weights``: one per output class (None: all equal)."""

    def __init__(self, weights: dict[str, float], ignore_index: int, class_weights: list[float] | None = None):
        super().__init__()
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.terms = nn.ModuleDict({k: _term(k, ignore_index, class_weights) for k in self.weights})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * self.terms[k](logits, target) for k, w in self.weights.items())
