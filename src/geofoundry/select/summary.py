"""Per-split summary for ``metrics/select.json``: size, objects per class, positive blocks, mean contexts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import CONTEXTS
from .split import SPLITS


def _mean(values: pd.Series, weights: pd.Series) -> float | None:
    ok = values.notna() & (weights > 0)
    return round(float(np.average(values[ok], weights=weights[ok])), 4) if ok.any() else None


def split_summary(blocks: pd.DataFrame, per_scene: pd.DataFrame, class_names: list[str]) -> dict:
    """Counts per split (blocks, scenes, objects per class, valid km²) and area-weighted context fractions.

    ``per_scene``: the (scene, block) rows with the split of their block.
    """
    keep = ["split", "valid_area_m2", "n_objects", "site", *(f"objects:{n}" for n in class_names), *CONTEXTS]
    blocks = pd.DataFrame({c: blocks[c] for c in keep if c in blocks})
    total_area = float(blocks["valid_area_m2"].sum()) or 1.0
    out = {}
    for split in SPLITS:
        b = blocks[blocks["split"] == split]
        area = b["valid_area_m2"]
        out[split] = {
            "blocks": int(len(b)),
            "scenes": int(per_scene.loc[per_scene["split"] == split, "scene_id"].nunique()),
            "objects": int(b["n_objects"].sum()),
            "valid_km2": round(float(area.sum()) / 1e6, 4),
            "area_share": round(float(area.sum()) / total_area, 4),
            "positive_blocks": int((b["n_objects"] > 0).sum()),
            "classes": {n: int(b[f"objects:{n}"].sum()) for n in class_names if f"objects:{n}" in b},
            "contexts": {c: _mean(b[c], area) for c in CONTEXTS if c in b},
            "sites": {str(k): round(float(v) / 1e6, 4) for k, v in area.groupby(b["site"]).sum().items()},
        }
    return out
