"""Per-pixel context masks from band values: vegetation, bright/snow, cloud/haze and water (see docs/DATA.md).

Heuristics on uncalibrated digital numbers, meant for coarse selection and balancing, not for mapping.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import minimum_filter

PIXEL_CONTEXTS = ("vegetation", "bright", "cloud_haze", "water")
NIR_NAMES = ("nir", "nir1", "nir2", "nir08")
NDVI_MIN, EXG_MIN, DARK_MIN = 0.3, 0.10, 0.05
BRIGHT_MIN, HAZE_MIN = 0.7, 0.4
HAZE_PATCH_M = 15.0


def full_scale(dtype: str, max_value: float) -> float:
    """Value of a saturated pixel: 255 for uint8; else the smallest bit depth (8–16) or 1.0 that holds ``max_value``."""
    if dtype == "uint8":
        return 255.0
    if dtype.startswith("float") and max_value <= 1.5:
        return 1.0
    bits = min(16, max(8, math.ceil(math.log2(max(max_value, 1.0) + 1))))
    return float(2**bits - 1)


def _nir(names: list[str]) -> str | None:
    return next((n for n in NIR_NAMES if n in names), None)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a + b > 0, (a - b) / (a + b), 0.0)


def context_masks(bands: dict[str, np.ndarray], valid: np.ndarray, scale: float,
                  pixel_m: float) -> dict[str, np.ndarray | None]:
    """Boolean (h, w) mask of each pixel context, restricted to ``valid``; None where the bands cannot tell.

    ``bands`` maps band names to (h, w) arrays in source units, ``scale`` is :func:`full_scale`, ``pixel_m`` the
    ground pixel size (for the haze patch).
    """
    names = list(bands)
    nir = _nir(names)
    visible = [bands[n] / scale for n in ("red", "green", "blue") if n in bands] or [b / scale for b in bands.values()]
    vis = np.stack(visible).astype(np.float32)
    darkest = vis.min(axis=0)
    out: dict[str, np.ndarray | None] = {}
    if nir and "red" in bands:
        out["vegetation"] = _ratio(bands[nir].astype(np.float32), bands["red"].astype(np.float32)) > NDVI_MIN
    elif all(n in bands for n in ("red", "green", "blue")):
        total = vis.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            exg = np.where(total > 0, (2 * vis[1] - vis[0] - vis[2]) / total, 0.0)  # excess green, chromatic coords
        out["vegetation"] = (exg > EXG_MIN) & (total / 3 > DARK_MIN)
    else:
        out["vegetation"] = None
    out["bright"] = darkest > BRIGHT_MIN
    size = max(1, round(HAZE_PATCH_M / pixel_m)) | 1
    dark_channel = minimum_filter(np.where(valid, darkest, np.inf), size=size, mode="nearest")
    out["cloud_haze"] = dark_channel > HAZE_MIN
    if nir and "green" in bands and "red" in bands:  # NDWI > 0 and NDVI < 0, not white (cloud, snow)
        nir_v = bands[nir].astype(np.float32)
        out["water"] = (_ratio(bands["green"].astype(np.float32), nir_v) > 0) & (
            _ratio(nir_v, bands["red"].astype(np.float32)) < 0) & ~out["bright"]
    else:
        out["water"] = None
    return {k: (None if m is None else m & valid) for k, m in out.items()}
