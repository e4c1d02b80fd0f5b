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
    """Accumulates weighted tile predictions over a region ``width`` columns wide, in raster order of tiles.

    Rows above the top of the next tile can no longer change: :meth:`flush` yields them, final. Memory holds about
    one tile height of the region, whatever the region's height.
    """

    def __init__(self, n_classes: int, width: int, tile: int):
        self.acc = np.zeros((n_classes, tile, width), dtype=np.float32)
        self.wsum = np.zeros((tile, width), dtype=np.float32)
        self.wanted = np.zeros((tile, width), dtype=bool)
        self.top = 0  # region row of acc[:, 0]

    def _ensure(self, rows: int) -> None:
        grow = rows - self.wsum.shape[0]
        if grow > 0:
            k, _, w = self.acc.shape
            self.acc = np.concatenate([self.acc, np.zeros((k, grow, w), np.float32)], axis=1)
            self.wsum = np.concatenate([self.wsum, np.zeros((grow, w), np.float32)])
            self.wanted = np.concatenate([self.wanted, np.zeros((grow, w), bool)])

    def add(self, probs: np.ndarray, weights: np.ndarray, wanted: np.ndarray, row: int, col: int) -> None:
        """Add one tile's probabilities (K, h, w) and wanted pixels (h, w) at region (row, col)."""
        _, h, w = probs.shape
        r = row - self.top
        self._ensure(r + h)
        self.acc[:, r:r + h, col:col + w] += probs * weights[:h, :w]
        self.wsum[r:r + h, col:col + w] += weights[:h, :w]
        self.wanted[r:r + h, col:col + w] |= wanted

    def flush(self, until: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield (first region row, blended probabilities, wanted mask) for the final rows above ``until``."""
        n = min(until - self.top, self.wsum.shape[0])
        if n <= 0:
            return
        yield self.top, self.acc[:, :n] / np.maximum(self.wsum[:n], EPS), self.wanted[:n].copy()
        for buf, axis in ((self.acc, 1), (self.wsum, 0), (self.wanted, 0)):  # shift up in place, clear the tail
            rows = buf.shape[axis]
            view = np.moveaxis(buf, axis, 0)
            view[: rows - n] = view[n:]
            view[rows - n:] = 0
        self.top += n
