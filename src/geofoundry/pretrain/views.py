"""Two augmented views of each tile, made on the device: a random resized crop, then the train stage's D4 and
colour changes (``train.device_augment``), each view with its own draws."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DeviceAugmentConfig
from ..train.device_augment import apply, draw


def resized_crops(x: torch.Tensor, side: int, boxes: torch.Tensor) -> torch.Tensor:
    """(B, C, side, side): each sample's square crop resized (bilinear). ``boxes`` (B, 3) in [0, 1): the crop's
    side as a fraction of the tile, and where it lies along x and y within the room left."""
    b = x.shape[0]
    f, ox, oy = boxes.unbind(1)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = f
    theta[:, 0, 2] = (2 * ox - 1) * (1 - f)  # centre in [-(1 - f), 1 - f]: the crop stays in the tile
    theta[:, 1, 2] = (2 * oy - 1) * (1 - f)
    grid = F.affine_grid(theta, [b, x.shape[1], side, side], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def crop_boxes(rng: np.random.Generator, n: int, scale: tuple[float, float]) -> np.ndarray:
    """(n, 3) float32: side fractions whose areas are uniform in ``scale``, and offsets."""
    area = rng.uniform(scale[0], scale[1], n)
    return np.stack([np.sqrt(area), rng.random(n), rng.random(n)], axis=1).astype(np.float32)


def two_views(tiles: torch.Tensor, rng: np.random.Generator, side: int, scale: tuple[float, float],
              cfg: DeviceAugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views (B, C, side, side) float in [0, 1] of uint8 ``tiles`` (B, C, T, T) on their device."""
    x = tiles.float().div_(255.0)
    views = []
    for _ in range(2):
        boxes = torch.from_numpy(crop_boxes(rng, len(x), scale)).to(x.device)
        v = resized_crops(x, side, boxes)
        params = torch.from_numpy(draw(rng.integers(0, 2**40, len(x)).tolist(), cfg))
        dummy = torch.zeros(len(x), side, side, dtype=torch.uint8, device=x.device)
        views.append(apply(v, dummy, params, cfg)[0].contiguous(memory_format=torch.channels_last))
    return views[0], views[1]
