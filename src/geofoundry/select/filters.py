"""Selection filters: scenes (site, sensor, GSD, dates) and blocks (contexts); an empty result
names the filter that emptied it."""

from __future__ import annotations

from datetime import date

import pandas as pd

from ..config import SelectConfig
from ..errors import GeofoundryError


def _in_dates(acquired: pd.Series, first: date, last: date) -> pd.Series:
    when = pd.to_datetime(acquired.fillna("").astype(str), errors="coerce", format="ISO8601")
    when = when.dt.tz_localize(None) if getattr(when.dt, "tz", None) is not None else when
    return when.notna() & (when >= pd.Timestamp(first)) & (when < pd.Timestamp(last) + pd.Timedelta(days=1))


def apply_filters(frame: pd.DataFrame, filters: list, what: str) -> pd.DataFrame:
    """Apply ``(name, predicate)`` filters in order; raise naming the first one that leaves nothing."""
    out = frame
    for name, keep in filters:
        before = len(out)
        out = out[keep(out)]
        if out.empty:
            raise GeofoundryError(f"the selection is empty: {name} removed all {before} remaining {what}")
    return out.reset_index(drop=True)


def filter_scenes(scenes: pd.DataFrame, cfg: SelectConfig) -> pd.DataFrame:
    """Apply the site, sensor, GSD and date filters in order (the valid fraction is measured later, by the scan)."""
    lo, hi = cfg.gsd_range
    filters = [("select.gsd_range", lambda d: (d["gsd_m"] >= lo) & (d["gsd_m"] <= hi))]
    if cfg.sites:
        filters.insert(0, ("select.sites", lambda d: d["site"].isin(cfg.sites)))
    if cfg.sensors:
        filters.insert(len(filters) - 1, ("select.sensors", lambda d: d["sensor"].isin(cfg.sensors)))
    if cfg.dates:
        filters.append(("select.dates", lambda d: _in_dates(d["acquired"], *cfg.dates)))
    return apply_filters(scenes, filters, "scenes")


def filter_blocks(cells: pd.DataFrame, cfg: SelectConfig) -> pd.DataFrame:
    """Keep (scene, block) rows whose context fractions fall in the ``select.contexts`` ranges (NaN fails)."""
    filters = [(f"select.contexts.{name}", lambda d, n=name, r=r: d[n].between(r[0], r[1]))
               for name, r in cfg.contexts.items()]
    return apply_filters(cells, filters, "blocks")
