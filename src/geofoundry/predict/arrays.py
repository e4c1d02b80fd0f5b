"""Where tiles are stacked and blended: plain numpy on the host (onnxruntime bundles) or torch on the model's device.

A backend names its array module ``xp`` (the blending code uses only operations numpy and torch share: slicing,
``+=``, ``*``, ``/``, ``clip``, ``where``, ``isfinite``, ``concatenate``, ``moveaxis``, ``rot90``, ``flip``) and
moves arrays across the host boundary:

* ``empty(shape, dtype)`` in reader threads: a host buffer to read into (``np.asarray`` views it) that is fast
  to transfer (torch/CUDA: page-locked);
* ``put(a)`` in the main thread: float32 on the device; ``copied()`` then returns a function that waits until the
  host array may be overwritten; ``zeros(shape)``: float32 zeros made on the device;
* ``pack_bits(a)``: a mask (n, w) (nonzero: set) as uint8 (n, ⌈w/8⌉) bits, the first pixel in the MSB
  (``np.packbits`` along rows), so masks cross to the host at an eighth of their size;
* ``take(parts)`` starts the copies of uint8 device arrays to the host and returns a function that waits for
  them and gives the host arrays;
* ``windows(a, size, step)``: a writable view (..., n, size) of the windows of ``a``'s last axis, ``step`` apart;
* ``steady_shapes``: pad every batch to the full batch size (cuDNN autotunes once per shape).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor, as the backend's ``xp`` makes them


@dataclass(frozen=True)
class NumpyArrays:
    """Everything on the host."""

    xp = np
    steady_shapes = False  # batches may shrink at the end of a strip

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    def put(self, a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, np.float32)

    def copied(self) -> Callable[[], None]:
        return lambda: None

    def to_uint8(self, a: np.ndarray) -> np.ndarray:
        return a.astype(np.uint8)

    def pack_bits(self, a: np.ndarray) -> np.ndarray:
        return np.packbits(a != 0, axis=-1)

    def take(self, parts: list[np.ndarray]) -> Callable[[], list[np.ndarray]]:
        return lambda: parts

    @staticmethod
    def windows(a: np.ndarray, size: int, step: int) -> np.ndarray:
        return np.lib.stride_tricks.sliding_window_view(a, size, axis=-1, writeable=True)[..., ::step, :]


@dataclass(frozen=True)
class TileModel:
    """A prediction function ``(B, C, t, t) raw float32 → (B, K, t, t) probabilities`` on ``arrays``' arrays;
    ``engines``: what runs each model in it (engine, reason, first-batch parity), filled in as it runs."""

    fn: Callable[[Array], Array]
    arrays: Any = NumpyArrays()
    engines: list[dict] = field(default_factory=list, compare=False)

    def __call__(self, batch: Array) -> Array:
        return self.fn(batch)
