"""Per-band percentile stretch to 8 bit: computed once on train pixels, reused by predict and export."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stretch:
    """Linear map of each band from [low, high] to [0, 255], clipped."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @classmethod
    def fit(cls, samples: np.ndarray, low_pct: float, high_pct: float) -> Stretch:
        """Fit from valid pixel samples of shape (C, N)."""
        if samples.shape[1] == 0:
            raise ValueError("no valid pixels to compute the stretch from")
        low = np.percentile(samples, low_pct, axis=1)
        high = np.percentile(samples, high_pct, axis=1)
        high = np.maximum(high, low + 1e-3 * np.maximum(1.0, np.abs(low)))  # a constant band: still a float32 span
        return cls(tuple(float(v) for v in low), tuple(float(v) for v in high))

    def apply(self, bands: np.ndarray) -> np.ndarray:
        """(C, H, W) source values → (C, H, W) uint8."""
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        high = np.asarray(self.high, dtype=np.float32)[:, None, None]
        scaled = (bands.astype(np.float32) - low) * (255.0 / (high - low))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def raw_chips(images: np.ndarray, low: list[float], high: list[float]) -> np.ndarray:
    """The stretch undone: uint8 chips (N, C, h, w) back to raw-like band values (float32), the model's input."""
    lo = np.asarray(low, np.float32)[None, :, None, None]
    hi = np.asarray(high, np.float32)[None, :, None, None]
    return (images.astype(np.float32) / 255.0) * (hi - lo) + lo
