"""Chips from the preprocess stage as a torch Dataset, with a seeded sampler that oversamples positives."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset


class ChipDataset(Dataset):
    """Memory-mapped ``images.npy`` (N, C, S, S) and ``labels.npy`` (N, S, S) of one split."""

    def __init__(self, split_dir: Path, augment: A.Compose | None = None):
        self.images = np.load(split_dir / "images.npy", mmap_mode="r")
        self.labels = np.load(split_dir / "labels.npy", mmap_mode="r")
        self.augment = augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.ascontiguousarray(np.moveaxis(self.images[i], 0, -1))  # HWC for albumentations
        mask = np.array(self.labels[i])
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0))).float().div_(255.0)
        return x, torch.from_numpy(np.ascontiguousarray(mask)).long()

    def positive(self, ignore_index: int) -> np.ndarray:
        """Chips that hold at least one target pixel."""
        return np.array([((lab > 0) & (lab != ignore_index)).any() for lab in self.labels])


def epoch_indices(positive: np.ndarray, n: int, positive_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` chip indices: ``positive_fraction`` of them from positive chips, the rest from all chips."""
    pos = np.flatnonzero(positive)
    n_pos = int(round(n * positive_fraction)) if len(pos) else 0
    picks = np.concatenate([rng.choice(pos, n_pos), rng.choice(len(positive), n - n_pos)])
    return rng.permutation(picks)
