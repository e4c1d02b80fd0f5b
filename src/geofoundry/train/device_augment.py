"""Augmentations of a whole batch where it lives (GPU, or CPU): D4 of image and target, brightness/contrast/noise.

Each sample's parameters come from its own seed (:func:`draw`, called by ``ChipDataset`` in the DataLoader), so a
run does not depend on workers, DDP ranks or a resume; :func:`apply` runs after the uint8 → float transfer. The
targets (border, contact and ignore included) are D4-equivariant, so transforming them after encoding is exact.
The noise itself comes from torch's generator, which every epoch reseeds from ``(seed, epoch, rank)``.
"""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=8)
def d4_sources(size: int, device: torch.device) -> torch.Tensor:
    """(8, size²) long: for each element ``k``, the flat index of the pixel that :func:`d4` brings to each place."""
    ramp = torch.arange(size * size, device=device).view(size, size)
    return torch.stack([d4(ramp, k).flatten() for k in range(8)])


def apply(x: torch.Tensor, y: torch.Tensor, params: torch.Tensor, cfg: DeviceAugmentConfig
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented images (float (B, C, S, S) in [0, 1], channels_last) and targets (B, S, S) of a batch.

    ``params`` (B, 4), as the DataLoader gives it (pinned), goes to the device in one copy; D4 is one gather of
    the images and one of the targets (each sample's pixels through its element's index map), so the host never
    waits for the device.
    """
    b, c, h, w = x.shape
    p = upload(params, x.device)
    if cfg.d4:
        if h != w:
            raise ValueError(f"D4 needs square chips, got {h}×{w}: crop to squares")
        src = d4_sources(h, x.device).index_select(0, p[:, 0].long())  # (B, S²)
        pixels = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view for channels_last
        x = pixels.gather(1, src[:, :, None].expand(-1, -1, c)).view(b, h, w, c).permute(0, 3, 1, 2)
        y = y.reshape(b, h * w).gather(1, src).view(b, h, w)
    if cfg.p_color and (cfg.brightness or cfg.contrast or cfg.noise):
        alpha, beta, std = p[:, 1:, None, None, None].unbind(1)
        x = x * alpha + beta
        if cfg.noise:
            x = x + torch.randn_like(x) * std
        x = x.clamp_(0, 1)
    return x, y
