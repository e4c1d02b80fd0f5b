"""Smooth tile weights and a strip accumulator that blends overlapping tiles with bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

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
    """Accumulates weighted tile predictions over a region of ``width`` columns, one tile row at a time.

    Rows above the next tile row's top can no longer receive tiles: :meth:`flush` yields them, final.
    Memory holds ``tile`` rows of the region at most, whatever the region's height.
    """

    def __init__(self, n_classes: int, width: int, tile: int):
        self.acc = np.zeros((n_classes, tile, width), dtype=np.float32)
        self.wsum = np.zeros((tile, width), dtype=np.float32)
        self.top = 0  # region row of acc[:, 0]

    def add(self, probs: np.ndarray, weights: np.ndarray, row: int, col: int) -> None:
        """Add one tile's probabilities (K, h, w) whose top-left is at region (row, col)."""
        k, h, w = probs.shape
        r = row - self.top
        need = r + h
        if need > self.acc.shape[1]:
            grow = need - self.acc.shape[1]
            self.acc = np.concatenate([self.acc, np.zeros((k, grow, self.acc.shape[2]), np.float32)], axis=1)
            self.wsum = np.concatenate([self.wsum, np.zeros((grow, self.wsum.shape[1]), np.float32)], axis=0)
        self.acc[:, r:r + h, col:col + w] += probs * weights[:h, :w]
        self.wsum[r:r + h, col:col + w] += weights[:h, :w]

    def flush(self, until: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first region row, blended probabilities) for the final rows above ``until``."""
        n = until - self.top
        if n <= 0:
            return
        out = self.acc[:, :n] / np.maximum(self.wsum[:n], EPS)
        yield self.top, out
        self.acc = np.concatenate([self.acc[:, n:], np.zeros_like(self.acc[:, :n])], axis=1)
        self.wsum = np.concatenate([self.wsum[n:], np.zeros_like(self.wsum[:n])], axis=0)
        self.top = until
