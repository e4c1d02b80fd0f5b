"""Self-supervised methods by name (``pretrain.method``; names in ``choices.PRETRAIN_METHODS``).

A method wraps the encoder being learnt: ``loss(view1, view2)`` on two augmented views of the same tiles, and
``encoder`` the module whose weights are written. SimCLR (Chen et al., 2020): the encoder's deepest features,
average-pooled, through a two-layer projection head; NT-Xent (normalised temperature-scaled cross entropy) makes
each view pick its partner among the other 2B - 1 views of the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainConfig


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of B pairs of embeddings (B, D): cross entropy of each view's cosine similarities to the other
    2B - 1 views, its partner the target."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, partner)


class SimCLR(nn.Module):
    def __init__(self, encoder: nn.Module, cfg: PretrainConfig):
        super().__init__()
        self.encoder, self.temperature = encoder, cfg.temperature
        width = encoder.out_channels[-1]
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, cfg.projection_dim))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)[-1].mean(dim=(2, 3)))

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        return nt_xent(self.embed(v1), self.embed(v2), self.temperature)


METHODS: dict[str, Callable[[nn.Module, PretrainConfig], nn.Module]] = {"simclr": SimCLR}
