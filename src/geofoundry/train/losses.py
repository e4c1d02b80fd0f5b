"""Weighted sums of segmentation losses (smp implementations); the ignore value is honoured by every term.

``LOSSES`` is the registry of ``train.loss`` names (declared in :mod:`geofoundry.choices`): one builder per name,
``build(ignore_index)`` or, for the terms that take class weights, ``build(ignore_index, class_weights)``. Class
weights (one per output class, background first) scale each class's part of a term: cross-entropy weighs each
pixel by its true class; Dice, Tversky and Focal average their per-class terms with the weights (smp's
``class_weights``). Lovász takes none.
"""

from __future__ import annotations

from collections.abc import Callable

import segmentation_models_pytorch.losses as L
import torch
from torch import nn

from ..choices import CLASS_WEIGHTED_LOSSES

Weights = list[float] | None


def cross_entropy(ignore_index: int, class_weights: Weights = None) -> nn.Module:
    weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)


def dice(ignore_index: int, class_weights: Weights = None) -> nn.Module:
    return L.DiceLoss("multiclass", ignore_index=ignore_index, class_weights=class_weights)


def focal(ignore_index: int, class_weights: Weights = None) -> nn.Module:
    return L.FocalLoss("multiclass", ignore_index=ignore_index, class_weights=class_weights)


def lovasz(ignore_index: int) -> nn.Module:
    return L.LovaszLoss("multiclass", ignore_index=ignore_index)


def tversky(ignore_index: int, class_weights: Weights = None) -> nn.Module:
    """α = 0.3, β = 0.7: false negatives weigh more than false positives (recall-leaning)."""
    return L.TverskyLoss("multiclass", ignore_index=ignore_index, alpha=0.3, beta=0.7, class_weights=class_weights)


LOSSES: dict[str, Callable[..., nn.Module]] = {
    "ce": cross_entropy, "dice": dice, "focal": focal, "lovasz": lovasz, "tversky": tversky}


def _term(name: str, ignore_index: int, class_weights: Weights) -> nn.Module:
    if class_weights is None:
        return LOSSES[name](ignore_index)
    if name not in CLASS_WEIGHTED_LOSSES:
        raise ValueError(f"loss {name!r} takes no class weights (those that do: {', '.join(CLASS_WEIGHTED_LOSSES)})")
    return LOSSES[name](ignore_index, class_weights)


class WeightedLoss(nn.Module):
    """sum_k weight_k · loss_k(logits, target); ``class_weights``: one per output class (None: all equal)."""

    def __init__(self, weights: dict[str, float], ignore_index: int, class_weights: Weights = None):
        super().__init__()
        self.weights = {k: w for k, w in weights.items() if w > 0}
        self.terms = nn.ModuleDict({k: _term(k, ignore_index, class_weights) for k in self.weights})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * self.terms[k](logits, target) for k, w in self.weights.items())
