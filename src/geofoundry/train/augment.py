"""Albumentations pipeline declared in params: ``[{ClassName: {arg: value}}, ...]``, applied to image and masks.

Randomness is per sample: :func:`reseed` gives the pipeline one generator seeded by the sample's own seed (drawn
with the epoch's chips), so augmentations do not depend on DataLoader workers, DDP ranks or where a run resumed.
"""

from __future__ import annotations

import inspect
import random
from typing import Any

import albumentations as A
import numpy as np

from ..errors import GeofoundryError


def build_augment(steps: list[dict[str, dict[str, Any] | None]], ignore_index: int) -> A.Compose:
    """The pipeline; transforms that pad masks (``fill_mask``) pad with ``ignore_index`` unless told otherwise."""
    transforms = []
    for i, step in enumerate(steps):
        (name, kwargs), = step.items()
        cls = getattr(A, name, None)
        if not isinstance(cls, type) or not issubclass(cls, A.BasicTransform):
            raise GeofoundryError(f"train.augment[{i}]: {name!r} is not an albumentations transform")
        kwargs, accepted = dict(kwargs or {}), inspect.signature(cls).parameters
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:  # albumentations itself only warns and drops them
            raise GeofoundryError(f"train.augment[{i}] {name}: unknown argument(s) {unknown}; "
                                  f"it takes {', '.join(accepted)}")
        if "fill_mask" in accepted:
            kwargs.setdefault("fill_mask", ignore_index)
        try:
            transforms.append(cls(**kwargs))
        except (TypeError, ValueError) as e:
            raise GeofoundryError(f"train.augment[{i}] {name}: {e}") from None
    return A.Compose(transforms)


def reseed(pipeline: A.Compose, seed: int) -> A.Compose:
    """Make the pipeline's next call a function of ``seed`` only (one generator shared by all its transforms)."""
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return pipeline
