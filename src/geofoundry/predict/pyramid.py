"""Overview levels built while the rows stream, on the model's device: each level the 2×2 average of the previous.

The COG driver would otherwise read the whole finished map back and average it on the host, which on large scenes
costs more than the inference. Averages honour the mask, as GDAL's ``average`` resampling does: a
2×2 block's value is the rounded mean of its valid pixels and the block is valid when any of them is; a partial
block at the right or bottom edge averages what it has (level sizes are GDAL's, ``ceil(size / factor)``).
"""

from __future__ import annotations

import enum
import math

import numpy as np

from .arrays import Array


def overview_factors(width: int, height: int, block: int) -> list[int]:
    """2, 4, 8, … until the level fits in one ``block``² tile (the COG driver's ``OVERVIEWS=AUTO`` levels)."""
    factors: list[int] = []
    while math.ceil(max(width, height) / (factors[-1] if factors else 1)) > block:
        factors.append(2 * factors[-1] if factors else 2)
    return factors


def _pad_even(a: Array, xp, axis: int) -> Array:
    """``a`` with one zero (= invalid) slice appended along ``axis`` when its length there is odd."""
    if a.shape[axis] % 2 == 0:
        return a
    index = [slice(None)] * a.ndim
    index[axis] = slice(0, 1)
    return xp.concatenate([a, a[tuple(index)] * 0], axis=axis)


def halve(values: Array, valid: Array, xp) -> tuple[Array, Array]:
    """Mask-aware 2×2 average of float ``values`` (K, h, w) that are 0 where float ``valid`` (h, w) is 0."""
    values, valid = _pad_even(_pad_even(values, xp, 1), xp, 2), _pad_even(_pad_even(valid, xp, 0), xp, 1)
    k, h, w = values.shape
    total = values.reshape(k, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
    count = valid.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
    return xp.floor(total / count.clip(min=1) + 0.5), count.clip(max=1)  # half up, as GDAL rounds


class Waiting(enum.Enum):
    """A level's row that waits for the next strip and is known to hold no valid pixel: no array is kept for it."""

    INVALID = "one invalid row"


class Pyramid:
    """Overview levels ``factors`` (2, 4, …) of a map that arrives as consecutive row strips, top to bottom.

    :meth:`add` takes the next strip and returns, per level, the rows it completes (possibly none): a row of a
    level needs two rows of the level below, so an odd row waits for the next strip (or, after the last strip, is
    averaged alone). :meth:`skip` does the same for a strip without valid pixels on the host, where only row counts
    change: a waiting row known to be invalid is ``Waiting.INVALID``, not an array.
    """

    def __init__(self, xp, factors: list[int]):
        self.xp, self.factors = xp, factors
        self.carry: list = [None] * len(factors)  # per level: None, Waiting.INVALID, or a (values, valid) row

    def add(self, values: Array, valid: Array, last: bool, empty: bool = False) -> list[tuple[Array, Array]]:
        """Float ``values`` (K, n, w), 0 outside float ``valid`` (n, w) → [(values, valid) of each level].

        ``empty``: no pixel of the strip is valid, so the rows that wait for the next strip are known to be invalid
        unless they come from a row that waited before (and the next empty strip can be skipped on the host).
        """
        xp, out = self.xp, []
        may = not empty  # whether this level's first new row may hold valid pixels (when not empty: every row)
        for i in range(len(self.factors)):
            carry, self.carry[i] = self.carry[i], None
            held = carry is not None and carry is not Waiting.INVALID  # a waiting row that may hold valid pixels
            if carry is not None:
                row = carry if held else (_zeros(values, 1), _zeros(valid, 1))
                values = xp.concatenate([row[0], values], axis=1)
                valid = xp.concatenate([row[1], valid], axis=0)
            n, first_new = valid.shape[0], int(carry is not None)
            if n % 2 and not last:
                waits_may = not empty or (n - 1 == 0 and held) or (n - 1 == first_new and may)
                self.carry[i] = (values[:, n - 1:], valid[n - 1:]) if waits_may else Waiting.INVALID
                values, valid = values[:, : n - 1], valid[: n - 1]
            may = not empty or (valid.shape[0] > 0 and (held or may))
            values, valid = halve(values, valid, xp)
            out.append((values, valid))
        return out

    def skip(self, n: int, last: bool) -> list[int] | None:
        """The rows each level completes with ``n`` invalid rows (all invalid), or None when a waiting row may hold
        valid pixels (then :meth:`add` must average it)."""
        if any(c is not None and c is not Waiting.INVALID for c in self.carry):
            return None
        counts = []
        for i in range(len(self.factors)):
            n += self.carry[i] is Waiting.INVALID
            self.carry[i] = Waiting.INVALID if n % 2 and not last else None
            n = (n - (self.carry[i] is Waiting.INVALID) + 1) // 2
            counts.append(n)
        return counts


def _zeros(a: Array, rows: int) -> Array:
    """Zeros like ``a`` (…, r, w) with ``rows`` rows, on ``a``'s device."""
    shape = (*a.shape[:-2], rows, a.shape[-1])
    return a.new_zeros(shape) if hasattr(a, "new_zeros") else np.zeros(shape, a.dtype)
