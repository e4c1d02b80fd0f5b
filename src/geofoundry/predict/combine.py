"""Compose model functions: test-time augmentation over the D4 group, and weighted ensembles."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .sliding import ModelFn

Transform = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _rot(k: int) -> Transform:
    return (lambda a: np.rot90(a, k, axes=(-2, -1)), lambda a: np.rot90(a, -k, axes=(-2, -1)))


def _flip_then_rot(k: int) -> Transform:
    return (lambda a: np.rot90(a[..., ::-1], k, axes=(-2, -1)), lambda a: np.rot90(a, -k, axes=(-2, -1))[..., ::-1])


TTA: dict[str, list[Transform]] = {
    "none": [_rot(0)],
    "flips": [_rot(0), _flip_then_rot(0), (lambda a: a[..., ::-1, :], lambda a: a[..., ::-1, :])],
    "d4": [_rot(k) for k in range(4)] + [_flip_then_rot(k) for k in range(4)],
}


def with_tta(fn: ModelFn, mode: str) -> ModelFn:
    """Average ``fn`` over the transforms of ``mode`` (each prediction mapped back before averaging)."""
    transforms = TTA[mode]
    if len(transforms) == 1:
        return fn

    def tta(batch: np.ndarray) -> np.ndarray:
        total = None
        for forward, inverse in transforms:
            out = inverse(fn(np.ascontiguousarray(forward(batch))))
            total = out if total is None else total + out
        return total / len(transforms)

    return tta


def ensemble(fns: Sequence[ModelFn], weights: Sequence[float]) -> ModelFn:
    """Weighted mean of the members' probabilities."""
    if len(fns) == 1:
        return fns[0]
    w = np.asarray(weights, dtype=np.float32) / float(np.sum(weights))

    def mean(batch: np.ndarray) -> np.ndarray:
        return sum(wi * fn(batch) for wi, fn in zip(w, fns))

    return mean
