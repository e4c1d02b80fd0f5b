"""Overview levels built while the rows stream, on the model's device: each level the 2×2 average of the previous.

The COG driver would otherwise read the whole finished map back and average it on the host (on a 40000² scene
that took twice as long as the inference). Averages honour the mask, as GDAL's ``average`` resampling does: a
2×2 block's value is the rounded mean of its valid pixels and the block is valid when any of them is; a partial
block at the right or bottom edge averages what it has (level sizes are GDAL's, ``ceil(size / factor)``).
"""

from __future__ import annotations

import math

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


class Pyramid:
    """Overview levels ``factors`` (2, 4, …) of a map that arrives as consecutive row strips, top to bottom.

    :meth:`add` takes the next strip and returns, per level, the rows it completes (possibly none): a row of a
    level needs two rows of the level below, so an odd row waits for the next strip (or, after the last strip, is
    averaged alone).
    """

    def __init__(self, xp, factors: list[int]):
        self.xp, self.factors = xp, factors
        self.carry: list[tuple[Array, Array] | None] = [None] * len(factors)

    def add(self, values: Array, valid: Array, last: bool) -> list[tuple[Array, Array]]:
        """Float ``values`` (K, n, w), 0 outside float ``valid`` (n, w) → [(values, valid) of each level]."""
        xp, out = self.xp, []
        for i in range(len(self.factors)):
            if self.carry[i] is not None:
                values = xp.concatenate([self.carry[i][0], values], axis=1)
                valid = xp.concatenate([self.carry[i][1], valid], axis=0)
                self.carry[i] = None
            n = valid.shape[0]
            if n % 2 and not last:
                self.carry[i] = values[:, n - 1:], valid[n - 1:]
                values, valid = values[:, : n - 1], valid[: n - 1]
            values, valid = halve(values, valid, xp)
            out.append((values, valid))
        return out
