"""Augmentations of a whole batch where it lives (GPU, or CPU): D4 of image and target, brightness/contrast/noise.

Each sample's parameters come from its own seed (:func:`draw`, called by ``ChipDataset`` in the DataLoader), so a
run does not depend on workers, DDP ranks or a resume; :func:`apply` runs after the uint8 → float transfer. The
targets (border, contact and ignore included) are D4-equivariant, so transforming them after encoding is exact.
The noise itself comes from torch's generator, which every epoch reseeds from ``(seed, epoch, rank)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import DeviceAugmentConfig
from .device import upload

IDENTITY = (0.0, 1.0, 0.0, 0.0)  # per-sample parameters: D4 element, contrast factor, brightness shift, noise std


def draw(seed: int | None, cfg: DeviceAugmentConfig | None) -> np.ndarray:
    """Parameters of one sample (float32, see ``IDENTITY``); identity without a seed (validation) or config."""
    if seed is None or cfg is None:
        return np.array(IDENTITY, np.float32)
    rng = np.random.default_rng([seed, 1])  # a stream apart from albumentations' (seeded by ``seed`` alone)
    k, color, c, b = rng.integers(8), rng.random() < cfg.p_color, rng.uniform(-1, 1), rng.uniform(-1, 1)
    if not color:
        return np.array([k if cfg.d4 else 0, *IDENTITY[1:]], np.float32)
    return np.array([k if cfg.d4 else 0, 1 + c * cfg.contrast, b * cfg.brightness, cfg.noise], np.float32)


def d4(t: torch.Tensor, k: int) -> torch.Tensor:
    """Element ``k`` (0–7) of the dihedral group on the last two dims: transposed when k ≥ 4, then k % 4 quarter
    turns (numpy's ``rot90`` direction)."""
    return torch.rot90(t.transpose(-2, -1) if k >= 4 else t, k % 4, dims=(-2, -1))


def apply(x: torch.Tensor, y: torch.Tensor, params: torch.Tensor, cfg: DeviceAugmentConfig
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented images (float (B, C, S, S) in [0, 1], layout kept) and targets (B, S, S) of a batch.

    ``params`` (B, 4) is best left on the host, as the DataLoader gives it: the D4 groups are read there and the
    indices and colour parameters uploaded from pinned memory, so the host never waits for the device; one
    index_select/rot90/index_copy per group.
    """
    if cfg.d4:
        ks = params[:, 0].long().cpu()
        order = upload(torch.argsort(ks, stable=True), x.device)
        out_x, out_y = torch.empty_like(x), torch.empty_like(y)
        for k, idx in enumerate(order.split(torch.bincount(ks, minlength=8).tolist())):
            if len(idx):
                out_x.index_copy_(0, idx, d4(x.index_select(0, idx), k))
                out_y.index_copy_(0, idx, d4(y.index_select(0, idx), k))
        x, y = out_x, out_y
    if cfg.p_color and (cfg.brightness or cfg.contrast or cfg.noise):
        alpha, beta, std = upload(params, x.device)[:, 1:, None, None, None].unbind(1)
        x = x * alpha + beta
        if cfg.noise:
            x = x + torch.randn_like(x) * std
        x = x.clamp_(0, 1)
    return x, y
