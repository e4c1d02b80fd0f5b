"""A GPU-compiled artefact: ``torch.export`` + AOTInductor package (``.pt2``), loadable without the model's code.

The package holds the deployed model (raw bands in, probabilities out) compiled for the GPU it was built on, with a
dynamic batch and tile sides that are multiples of 32 (what the encoders need).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ..io.atomic import atomic_path
from ..models.deployed import DeployedModel


class CastNet(nn.Module):
    """A copy of the deployed model with its network in ``dtype`` (e.g. bf16); probabilities stay float32."""

    def __init__(self, model: DeployedModel, dtype: torch.dtype):
        super().__init__()
        self.model = copy.deepcopy(model)
        self.model.net.to(dtype)
        self.dtype = dtype

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = ((raw - self.model.low) * self.model.scale).clamp(0.0, 1.0).to(self.dtype)
        return torch.softmax(self.model.net(x).float(), dim=1)


def export_aoti(model: DeployedModel, n_bands: int, path: Path, *, dtype: torch.dtype = torch.bfloat16,
                max_batch: int = 64, max_side: int = 2048, device: str = "cuda") -> Path:
    """Compile ``model`` for ``device`` and write the AOTInductor package to ``path`` (atomically)."""
    net = CastNet(model.eval(), dtype).to(device).eval()
    example = (torch.rand(2, n_bands, 256, 256, device=device) * 255,)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    side = {k: 32 * torch.export.Dim(f"{k}32", min=1, max=max_side // 32) for k in ("h", "w")}
    with torch.inference_mode():
        program = torch.export.export(net, example, dynamic_shapes=({0: batch, 2: side["h"], 3: side["w"]},))
    with atomic_path(path) as tmp:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
    return path


def load_aoti(path: Path):
    """The compiled model as a callable (no geofoundry or smp code needed to run it)."""
    return torch._inductor.aoti_load_package(str(path))
