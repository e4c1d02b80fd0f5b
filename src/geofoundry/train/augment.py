"""Albumentations pipeline declared in params: ``[{ClassName: {arg: value}}, ...]``."""

from __future__ import annotations

from typing import Any

import albumentations as A

from ..errors import GeofoundryError


def build_augment(steps: list[dict[str, dict[str, Any] | None]], seed: int) -> A.Compose:
    transforms = []
    for i, step in enumerate(steps):
        (name, kwargs), = step.items()
        cls = getattr(A, name, None)
        if not isinstance(cls, type) or not issubclass(cls, A.BasicTransform):
            raise GeofoundryError(f"train.augment[{i}]: {name!r} is not an albumentations transform")
        try:
            transforms.append(cls(**(kwargs or {})))
        except (TypeError, ValueError) as e:
            raise GeofoundryError(f"train.augment[{i}] {name}: {e}") from None
    return A.Compose(transforms, seed=seed)
