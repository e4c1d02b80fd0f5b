"""Batched blending: a batch of tiles added through strided views equals adding the tiles one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geofoundry.predict.arrays import NumpyArrays
from geofoundry.predict.blend import StripBlender, cut, ramp_weights
from geofoundry.predict.torch_model import TorchArrays

ARRAYS = {"numpy": NumpyArrays(), "torch": TorchArrays(torch.device("cpu"))}


def _one_by_one(probs: np.ndarray, cols: list[int], width: int, tile: int, overlap: int) -> np.ndarray:
    acc = np.zeros((probs.shape[1] + 1, tile, width), np.float32)
    w = ramp_weights(tile, overlap)
    for p, c in zip(probs, cols):
        acc[:-1, :, c:c + tile] += p * w
        acc[-1, :, c:c + tile] += w
    return acc


@pytest.mark.parametrize("backend", ARRAYS)
@pytest.mark.parametrize("tile,overlap", [(64, 16), (64, 0), (64, 40), (64, 63)])
def test_batched_blend_equals_tile_by_tile(backend, tile, overlap):
    """Runs of tiles one stride apart, gaps (skipped tiles) and an end tile off the stride grid, in two batches."""
    stride, width = tile - overlap, 1000
    grid = list(range(0, width - tile + 1, stride))
    cols = [c for i, c in enumerate(grid) if i % 7 not in (3, 4)] + [width - tile]  # gaps, then the end tile
    cols = sorted(set(cols))
    rng = np.random.default_rng(tile + overlap)
    probs = rng.random((len(cols), 2, tile, tile), dtype=np.float32)
    arrays = ARRAYS[backend]
    blender = StripBlender(arrays, 2, width, tile, overlap)
    half = len(cols) // 2
    for part in (slice(0, half), slice(half, None)):
        blender.add(arrays.put(probs[part]), cols[part])
    got = np.asarray(blender.buffers[0])
    np.testing.assert_allclose(got, _one_by_one(probs, cols, width, tile, overlap), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ARRAYS)
def test_cut_gives_the_tiles_in_order(backend):
    """Tiles cut by runs of strided views are the plain slices, in the order of ``cols``."""
    arrays = ARRAYS[backend]
    x = np.random.default_rng(0).random((3, 32, 300), dtype=np.float32)
    cols = [0, 24, 48, 120, 144, 268]
    tiles = np.concatenate([np.asarray(t) for t in cut(arrays, arrays.put(x), cols, 32, 24)])
    np.testing.assert_array_equal(tiles, np.stack([x[:, :, c:c + 32] for c in cols]))


@pytest.mark.parametrize("backend", ARRAYS)
@pytest.mark.parametrize("rows,width", [(3, 1), (3, 8), (5, 13), (2, 517), (0, 12)])
def test_masks_packed_as_numpy_packs_bits(backend, rows, width):
    """A mask (0/1 floats, as the strips' masks are on the device) comes packed 8 pixels a byte, the first pixel
    in the most significant bit, each row padded to whole bytes with zeros, as ``np.packbits`` packs it."""
    mask = (np.random.default_rng(width).random((rows, width)) < 0.5).astype(np.float32)
    arrays = ARRAYS[backend]
    packed = np.asarray(arrays.pack_bits(arrays.put(mask)))
    assert packed.dtype == np.uint8
    np.testing.assert_array_equal(packed, np.packbits(mask > 0, axis=-1))
