"""Compose model functions: test-time augmentation over the D4 group, and weighted ensembles.

Both work on numpy arrays and on torch tensors alike: ``xp`` is the array module (``rot90`` and ``flip`` take the
same positional arguments in both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..choices import TTA
from ..config import TtaMode
from .arrays import Array

Fn = Callable[[Array], Array]


def transformed(fn: Fn, batch: Array, mode: str, xp: Any) -> Iterator[Array]:
    """``fn`` applied under each transform of ``mode``, each prediction mapped back."""
    for k, flip in TTA[mode]:
        x = xp.flip(batch, (-1,)) if flip else batch
        out = xp.rot90(fn(xp.rot90(x, k, (-2, -1))), -k, (-2, -1))
        yield xp.flip(out, (-1,)) if flip else out


def with_tta(fn: Fn, mode: TtaMode, xp: Any) -> Fn:
    """Average ``fn`` over the D4 elements of ``mode`` (the registry ``choices.TTA``), each prediction mapped back
    before averaging."""
    transforms = TTA[mode]
    if len(transforms) == 1:
        return fn

    def tta(batch: Array) -> Array:
        total = None
        for out in transformed(fn, batch, mode, xp):
            total = out if total is None else total + out
        return total / len(transforms)

    return tta


def ensemble(fns: Sequence[Fn], weights: Sequence[float]) -> Fn:
    """Weighted mean of the members' probabilities."""
    if len(fns) == 1:
        return fns[0]
    total = float(sum(weights))

    def mean(batch: Array) -> Array:
        return sum(w / total * fn(batch) for w, fn in zip(weights, fns))

    return mean
