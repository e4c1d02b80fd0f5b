"""Chips from the preprocess stage as a torch Dataset, and a seeded sampler that oversamples positives.

The sampler yields ``(chip, seed)`` keys: the epoch's draw of chips and of augmentation seeds is a function of
``(seed, epoch)`` only, split between DDP ranks, so a run is the same with any number of workers and after a
resume. One DataLoader serves every epoch (``set_epoch``), so its workers can persist.
"""

from __future__ import annotations

import math
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import DeviceAugmentConfig
from .augment import reseed
from .device_augment import draw
from .targets import Target


class ChipDataset(Dataset):
    """Memory-mapped ``images.npy`` (N, C, S, S), ``labels.npy`` (N, S, S) and optional ``instances.npy`` of a split.

    Items are ``(image uint8 (C, S, S), target uint8 (S, S), device augment parameters float32 (4,))``: the float
    conversion and ``device_augment`` happen on the device; keys without a seed get identity parameters.
    """

    def __init__(self, split_dir: Path, target: Target, ignore_index: int, augment: A.Compose | None = None,
                 device_augment: DeviceAugmentConfig | None = None):
        self.split_dir, self.target, self.ignore_index = Path(split_dir), target, ignore_index
        self.augment, self.device_augment = augment, device_augment
        self._open: dict[str, np.ndarray | None] = {}

    def _array(self, name: str) -> np.ndarray | None:
        """``<name>.npy`` memory-mapped on first use (in each worker: memory maps are not pickled)."""
        if name not in self._open:
            path = self.split_dir / f"{name}.npy"
            self._open[name] = np.load(path, mmap_mode="r") if path.is_file() else None
        return self._open[name]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": {}}

    @property
    def images(self) -> np.ndarray:
        return self._array("images")

    @property
    def labels(self) -> np.ndarray:
        return self._array("labels")

    @property
    def instances(self) -> np.ndarray | None:
        return self._array("instances")

    def __len__(self) -> int:
        return len(self.images)

    @staticmethod
    def size(split_dir: Path) -> int:
        """Chip side in pixels."""
        return int(np.load(split_dir / "labels.npy", mmap_mode="r").shape[-1])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i, seed = key if isinstance(key, tuple) else (key, None)
        image = np.array(self.images[i])
        masks = [np.array(self.labels[i])]
        if self.instances is not None:
            masks.append(np.array(self.instances[i]))
        if self.augment is not None and seed is not None:
            out = reseed(self.augment, seed)(image=np.ascontiguousarray(np.moveaxis(image, 0, -1)), masks=masks)
            image, masks = np.moveaxis(out["image"], -1, 0), out["masks"]  # albumentations works on HWC
        target = self.target.encode(masks[0], self.ignore_index, masks[1] if len(masks) > 1 else None)
        return (torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(target)),
                torch.from_numpy(draw(seed, self.device_augment)))

    def positive(self) -> np.ndarray:
        """Chips that hold at least one target pixel."""
        return np.array([((lab > 0) & (lab != self.ignore_index)).any() for lab in self.labels])


def epoch_indices(positive: np.ndarray, n: int, positive_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` chip indices: ``positive_fraction`` of them from positive chips, the rest from all chips."""
    pos = np.flatnonzero(positive)
    n_pos = int(round(n * positive_fraction)) if len(pos) else 0
    picks = np.concatenate([rng.choice(pos, n_pos), rng.choice(len(positive), n - n_pos)])
    return rng.permutation(picks)


class ChipSampler(Sampler):
    """This rank's ``(chip, augmentation seed)`` keys of an epoch; every rank gets the same count."""

    def __init__(self, positive: np.ndarray, samples: int, positive_fraction: float, seed: int,
                 rank: int = 0, world: int = 1):
        self.positive, self.fraction, self.seed, self.rank, self.world = positive, positive_fraction, seed, rank, world
        self.per_rank = math.ceil(samples / world)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def keys(self) -> list[tuple[int, int]]:
        """All ranks' keys of the epoch (rank r takes every world-th one from r)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n = self.per_rank * self.world
        chips = epoch_indices(self.positive, n, self.fraction, rng)
        seeds = rng.integers(0, 2**31, n)
        return list(zip(chips.tolist(), seeds.tolist()))

    def __iter__(self):
        return iter(self.keys()[self.rank::self.world])

    def __len__(self) -> int:
        return self.per_rank


def loader(dataset: Dataset, batch_size: int, *, sampler: Sampler | None = None, workers: int = 0,
           prefetch: int = 2, pin: bool = False) -> DataLoader:
    """A DataLoader that keeps a GPU fed: worker processes that persist across epochs, prefetching, pinned memory.

    With workers, OpenCV (albumentations) gets one thread per process, set before the workers fork: they run in
    parallel already (setting it inside a forked worker can deadlock).
    """
    extra = {}
    if workers:
        import cv2

        cv2.setNumThreads(1)
        extra = {"persistent_workers": True, "prefetch_factor": prefetch}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin,
                      **extra)
