"""The train split held on the device: every chip encoded once, batches gathered there by the sampler's keys.

Without host augmentations (``train.augment: []``) a chip's target does not depend on its draw, so each chip is
encoded once and a batch is two ``index_select`` on the device plus its ``device_augment`` parameters: no worker
processes, no pinned copies, nothing on the host thread that launches the kernels but the sampler. The batches
are the DataLoader's, so the choice changes a run's speed, not its result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import torch

from ..config import TrainConfig
from .data import ChipDataset, ChipSampler, loader
from .device import Runtime, upload
from .device_augment import draw

log = logging.getLogger(__name__)

DEVICE_SHARE = 0.25  # ``chips_on_device: auto`` takes at most this share of the device's free memory


def held_bytes(dataset: ChipDataset) -> int:
    """Bytes of the split's chips and encoded targets, uint8."""
    n, c, h, w = dataset.images.shape
    return n * (c + 1) * h * w


def wanted(cfg: TrainConfig, rt: Runtime, nbytes: int) -> bool:
    """``train.chips_on_device`` resolved: ``auto`` holds them on a CUDA device when no host augmentation is
    declared and they take at most ``DEVICE_SHARE`` of its free memory."""
    if cfg.chips_on_device != "auto":
        return cfg.chips_on_device
    return rt.cuda and not cfg.augment and nbytes <= DEVICE_SHARE * torch.cuda.mem_get_info(rt.device)[0]


class ResidentBatches:
    """Iterable of the sampler's batches ``(images uint8, targets uint8, device augment parameters)``, the first
    two already on ``device``."""

    def __init__(self, dataset: ChipDataset, sampler: ChipSampler, device: torch.device, workers: int = 0,
                 prefetch: int = 2):
        if dataset.augment is not None:
            raise ValueError("chips on the device need a dataset without host augmentations")
        t0 = time.perf_counter()
        n, c, h, w = dataset.images.shape
        self.images = torch.empty((n, c, h, w), dtype=torch.uint8, device=device)
        self.targets = torch.empty((n, h, w), dtype=torch.uint8, device=device)
        done = 0
        for x, y, _ in loader(dataset, 64, workers=workers, prefetch=prefetch):  # in order; no seed: no draw
            self.images[done:done + len(x)] = x
            self.targets[done:done + len(x)] = y
            done += len(x)
        self.sampler, self.augment, self.device = sampler, dataset.device_augment, device
        log.info("train chips on %s: %d chips, %.0f MB, encoded in %.1f s", device, len(self.images),
                 (self.images.nbytes + self.targets.nbytes) / 1e6, time.perf_counter() - t0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for keys in self.sampler:
            chips, seeds = zip(*keys)
            idx = upload(torch.tensor(chips), self.device)
            params = torch.from_numpy(draw(seeds, self.augment))
            yield self.images.index_select(0, idx), self.targets.index_select(0, idx), params
