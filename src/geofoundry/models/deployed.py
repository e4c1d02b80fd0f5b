"""The model as delivered: raw band values in, class probabilities out (stretch and softmax inside).

The predict stage runs exactly this module, and the export stage writes exactly this module to ONNX, so the
delivered model and the pipeline agree to float precision.
"""

from __future__ import annotations

import torch
from torch import nn


class DeployedModel(nn.Module):
    """``(B, C, H, W)`` raw values (float32) → ``(B, K, H, W)`` probabilities, K classes including background."""

    def __init__(self, net: nn.Module, low: list[float], high: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("low", torch.tensor(low, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("scale", 1.0 / (torch.tensor(high, dtype=torch.float32) -
                                             torch.tensor(low, dtype=torch.float32)).view(1, -1, 1, 1))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = ((raw - self.low) * self.scale).clamp(0.0, 1.0)
        return torch.softmax(self.net(x).float(), dim=1)
