"""Scene filters from the selection query; an empty result names the filter that emptied it."""

from __future__ import annotations

import pandas as pd

from ..config import SelectConfig
from ..errors import GeofoundryError


def filter_scenes(scenes: pd.DataFrame, cfg: SelectConfig) -> pd.DataFrame:
    """Apply site, sensor, GSD and valid-fraction filters in order."""
    lo, hi = cfg.gsd_range
    filters = [
        ("select.sites", lambda d: d[d["site"].isin(cfg.sites)] if cfg.sites else d),
        ("select.sensors", lambda d: d[d["sensor"].isin(cfg.sensors)] if cfg.sensors else d),
        ("select.gsd_range", lambda d: d[(d["gsd_m"] >= lo) & (d["gsd_m"] <= hi)]),
        ("select.min_valid_frac",
         lambda d: d[d["valid_frac"] >= cfg.min_valid_frac] if "valid_frac" in d and cfg.min_valid_frac else d),
    ]
    out = scenes
    for name, apply in filters:
        before = len(out)
        out = apply(out)
        if out.empty:
            raise GeofoundryError(f"the selection is empty: {name} removed all {before} remaining scenes")
    return out.reset_index(drop=True)
