"""Smooth tile weights and a strip accumulator that blends overlapping tiles with bounded memory."""

from __future__ import annotations

import numpy as np

from .arrays import Array

EPS = 1e-3


def ramp_weights(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) weights: 1 in the centre, a linear ramp to ~0 over ``overlap`` pixels at each edge."""
    w = np.ones(tile, dtype=np.float32)
    if overlap:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    w = np.maximum(w, EPS)
    return np.outer(w, w)


class StripBlender:
    """Weighted sums of tile predictions over rows ``[top, top + tile)`` of a region ``width`` columns wide.

    Tiles come one row of tiles at a time, each row's tiles starting at ``top``. :meth:`flush` returns the blended
    first ``n`` rows (no later row of tiles can reach them) and moves the window down by ``n``. Two buffers
    alternate, so moving never copies a buffer onto itself (torch forbids overlapping in-place copies).
    """

    def __init__(self, arrays, n_classes: int, width: int, tile: int, overlap: int):
        zeros = np.zeros((n_classes + 1, tile, width), dtype=np.float32)  # last plane: the weight sum
        self.buffers = [arrays.put(zeros), arrays.put(zeros)]
        self.weights = arrays.put(ramp_weights(tile, overlap))
        self.tile = tile

    def add(self, probs: Array, col: int) -> None:
        """Add one tile's probabilities (K, tile, tile) at column ``col`` of the current row of tiles."""
        acc = self.buffers[0][:, :, col:col + self.tile]
        acc[:-1] += probs * self.weights
        acc[-1] += self.weights

    def flush(self, n: int) -> Array:
        """The blended probabilities (K, n, width) of the first ``n`` rows; the window moves down by ``n``."""
        cur, nxt = self.buffers
        blended = cur[:-1, :n] / cur[-1:, :n].clip(min=EPS)
        nxt[:, : self.tile - n] = cur[:, n:]
        nxt[:, self.tile - n:] = 0
        self.buffers = [nxt, cur]
        return blended
