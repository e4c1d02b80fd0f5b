"""Augmentations of a whole batch where it lives (GPU, or CPU): D4 of image and target, brightness/contrast/noise.

Each sample's parameters come from its own seed (:func:`draw`, called by ``ChipDataset`` in the DataLoader or by
``ResidentBatches`` for a batch), so a run does not depend on workers, DDP ranks, a resume or where the chips are;
:func:`apply` runs after the uint8 → float transfer. The targets (border, contact and ignore included) are
D4-equivariant, so transforming them after encoding is exact. The noise itself comes from torch's generator, which
every epoch reseeds from ``(seed, epoch, rank)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from ..config import DeviceAugmentConfig
from .device import upload

IDENTITY = (0.0, 1.0, 0.0, 0.0)  # per-sample parameters: D4 element, contrast factor, brightness shift, noise std


_MIX = tuple(np.uint64(m) for m in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def uniforms(seeds: Sequence[int], n: int) -> np.ndarray:
    """(len(seeds), n) uniforms in [0, 1): value i of a seed is the SplitMix64 hash of ``(seed, i)``, a
    counter-based stream per seed, so a whole batch is drawn in a few array operations rather than a numpy
    Generator per seed (BENCHMARKS.md, train)."""
    z = (np.asarray(seeds, np.uint64)[:, None] << np.uint64(8)) + np.arange(1, n + 1, dtype=np.uint64)
    z = z * _MIX[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX[1]
    z = (z ^ (z >> np.uint64(27))) * _MIX[2]
    return ((z ^ (z >> np.uint64(31))) >> np.uint64(11)) * 2.0**-53


def draw(seeds: Sequence[int], cfg: DeviceAugmentConfig | None) -> np.ndarray:
    """Parameters (len(seeds), 4) float32 of samples (see ``IDENTITY``), each from its own seed alone; identity
    rows without a config (validation)."""
    out = np.tile(np.array(IDENTITY, np.float32), (len(seeds), 1))
    if cfg is None or not len(seeds):
        return out
    u = uniforms(seeds, 4)
    if cfg.d4:
        out[:, 0] = np.floor(u[:, 0] * 8)
    color = u[:, 1] < cfg.p_color
    out[color, 1] = 1 + (2 * u[color, 2] - 1) * cfg.contrast
    out[color, 2] = (2 * u[color, 3] - 1) * cfg.brightness
    out[color, 3] = cfg.noise
    return out


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

    ``params`` (B, 4), as the DataLoader gives it (pinned), goes to the device in one copy, and only when D4 or
    colour is declared (else the batch passes through); D4 is one gather of the images and one of the targets (each
    sample's pixels through its element's index map), so the host never waits for the device.
    """
    colour = cfg.p_color and (cfg.brightness or cfg.contrast or cfg.noise)
    if not (cfg.d4 or colour):
        return x, y
    b, c, h, w = x.shape
    p = upload(params, x.device)
    if cfg.d4:
        if h != w:
            raise ValueError(f"D4 needs square chips, got {h}×{w}: crop to squares")
        src = d4_sources(h, x.device).index_select(0, p[:, 0].long())  # (B, S²)
        pixels = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view for channels_last
        x = pixels.gather(1, src[:, :, None].expand(-1, -1, c)).view(b, h, w, c).permute(0, 3, 1, 2)
        y = y.reshape(b, h * w).gather(1, src).view(b, h, w)
    if colour:
        alpha, beta, std = p[:, 1:, None, None, None].unbind(1)
        x = x * alpha + beta
        if cfg.noise:
            x = x + torch.randn_like(x) * std
        x = x.clamp_(0, 1)
    return x, y
