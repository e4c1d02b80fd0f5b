"""Chips from the preprocess stage as a torch Dataset, and a seeded sampler that oversamples positives.

The sampler yields batches of ``(chip, seed)`` keys: the epoch's draw of chips and of augmentation seeds is a
function of ``(seed, epoch)`` only, split between DDP ranks, so a run is the same with any number of workers and
after a resume. It yields every epoch of the run in turn, so one DataLoader iterator serves the whole run and its
workers prefetch the next epoch while this one ends and rank 0 validates.
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
        """Object ids of the chips, when preprocess wrote them and the target needs them (border targets)."""
        return self._array("instances") if self.target.auxiliary else None

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
                torch.from_numpy(draw([seed], None if seed is None else self.device_augment)[0]))

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
    """This rank's batches of ``(chip, augmentation seed)`` keys, epoch after epoch (a DataLoader batch sampler).

    Every rank gets ``per_rank`` keys an epoch, in ``steps`` batches: the last one is short when ``batch_size``
    does not divide ``per_rank`` (a batch never spans two epochs).
    """

    def __init__(self, positive: np.ndarray, samples: int, positive_fraction: float, seed: int, batch_size: int,
                 rank: int = 0, world: int = 1):
        self.positive, self.fraction, self.seed, self.rank, self.world = positive, positive_fraction, seed, rank, world
        self.batch_size, self.per_rank = batch_size, math.ceil(samples / world)
        self.steps = math.ceil(self.per_rank / batch_size)
        self.epochs = range(1)

    def set_epochs(self, start: int, stop: int) -> None:
        """Iterate over epochs ``start`` … ``stop - 1``."""
        self.epochs = range(start, stop)

    def keys(self, epoch: int) -> list[tuple[int, int]]:
        """All ranks' keys of ``epoch`` (rank r takes every world-th one from r)."""
        rng = np.random.default_rng([self.seed, epoch])
        n = self.per_rank * self.world
        chips = epoch_indices(self.positive, n, self.fraction, rng)
        seeds = rng.integers(0, 2**31, n)
        return list(zip(chips.tolist(), seeds.tolist()))

    def __iter__(self):
        for epoch in self.epochs:
            mine = self.keys(epoch)[self.rank::self.world]
            yield from (mine[i:i + self.batch_size] for i in range(0, self.per_rank, self.batch_size))

    def __len__(self) -> int:
        return self.steps * len(self.epochs)


def loader(dataset: Dataset, batches: int | Sampler, *, workers: int = 0, prefetch: int = 2,
           pin: bool = False) -> DataLoader:
    """A DataLoader that keeps a GPU fed: worker processes that persist across iterators, prefetching, pinned memory.

    ``batches``: a batch size (the dataset in order) or a batch sampler. With workers, OpenCV (albumentations) gets
    one thread per process, set before the workers fork: they run in parallel already (setting it inside a forked
    worker can deadlock).
    """
    extra = {"batch_sampler": batches} if isinstance(batches, Sampler) else {"batch_size": batches}
    if workers:
        import cv2

        cv2.setNumThreads(1)
        extra |= {"persistent_workers": True, "prefetch_factor": prefetch}
    return DataLoader(dataset, num_workers=workers, pin_memory=pin, **extra)
