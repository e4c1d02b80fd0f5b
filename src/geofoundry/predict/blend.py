"""Smooth tile weights and a strip accumulator that blends overlapping tiles with bounded memory."""

from __future__ import annotations

import math

import numpy as np

from .arrays import Array

EPS = 1e-3  # the smallest weight of a tile's edge; a pixel that any tile covers has a weight sum ≥ EPS²


def ramp_weights(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) weights: 1 in the centre, a linear ramp to ~0 over ``overlap`` pixels at each edge."""
    w = np.ones(tile, dtype=np.float32)
    if overlap:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    w = np.maximum(w, EPS)
    return np.outer(w, w)


def strided_runs(cols: list[int], stride: int) -> list[tuple[int, int]]:
    """``(first index, length)`` of the runs of ``cols`` that go up by ``stride``."""
    out: list[tuple[int, int]] = []
    for i, c in enumerate(cols):
        if out and c == cols[i - 1] + stride:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


def cut(arrays, x: Array, cols: list[int], tile: int, stride: int) -> list[Array]:
    """Views (n, C, tile, tile) of the tiles of ``x`` (C, tile, width) at ``cols``, one per run of ``cols``."""
    return [arrays.xp.moveaxis(arrays.windows(x[..., cols[i]:], tile, stride)[:, :, :n], 2, 0)
            for i, n in strided_runs(cols, stride)]


class StripBlender:
    """Weighted sums of tile predictions over rows ``[top, top + tile)`` of a region ``width`` columns wide.

    Tiles come one row of tiles at a time, each row's tiles starting at ``top``, in batches: a run of tiles one
    ``stride`` apart is added as ``ceil(tile / stride)`` strided views whose tiles do not overlap, so a batch costs a
    few array operations whatever its size. :meth:`flush` returns the blended first ``n`` rows (no later row of
    tiles can reach them) and moves the window down by ``n``. Two buffers alternate, so moving never copies a
    buffer onto itself (torch forbids overlapping in-place copies). While no tile reaches the window (stretches of
    nodata), flushing costs nothing.
    """

    def __init__(self, arrays, n_classes: int, width: int, tile: int, overlap: int):
        shape = (n_classes + 1, tile, width)  # last plane: the weight sum
        self.buffers = [arrays.zeros(shape), arrays.zeros(shape)]
        self.weights = arrays.put(ramp_weights(tile, overlap))
        self.arrays, self.tile, self.stride = arrays, tile, tile - overlap
        self.reached = 0  # rows at the window's top that tiles have reached: the buffers are zero below them

    def add(self, probs: Array, cols: list[int]) -> None:
        """Add tiles' probabilities (B, K, tile, tile) at columns ``cols`` (increasing) of the current row."""
        xp, acc, t, s = self.arrays.xp, self.buffers[0], self.tile, self.stride
        weighted = probs * self.weights
        apart = math.ceil(t / s)  # tiles this many strides apart do not overlap
        for i, n in strided_runs(cols, s):
            for r in range(min(apart, n)):
                picked = weighted[i + r:i + n:apart]
                view = self.arrays.windows(acc[..., cols[i] + r * s:], t, apart * s)[:, :, :len(picked)]
                view[:-1] += xp.moveaxis(picked, 0, 2)  # (K, tile, m, tile)
                view[-1] += self.weights[:, None, :]
        self.reached = t

    def flush(self, n: int) -> Array | None:
        """The blended probabilities (K, n, width) of the first ``n`` rows, None when no tile reached them; the
        window moves down by ``n``."""
        if not self.reached:
            return None
        self.reached = max(0, self.reached - n)
        cur, nxt = self.buffers
        blended = cur[:-1, :n] / cur[-1:, :n].clip(min=EPS * EPS)  # where no tile reaches: 0 / EPS²
        nxt[:, : self.tile - n] = cur[:, n:]
        nxt[:, self.tile - n:] = 0
        self.buffers = [nxt, cur]
        return blended
