"""Object metrics broken down by object size, by the context of the block an object lies in, and by GSD.

Each outcome is placed by one geometry: a true positive and a false positive by the predicted polygon, a false
negative by the truth polygon. Contexts (vegetation, bright, cloud/haze, water fractions) come from the select
stage's blocks, so a breakdown by context needs ``blocks.parquet`` with those columns.
"""

from __future__ import annotations

import math

import geopandas as gpd
import pandas as pd

from ..io.units import area_m2
from .objects import prf

SIZE_BINS = ((0.0, 50.0, "lt50m2"), (50.0, 200.0, "50to200m2"), (200.0, math.inf, "ge200m2"))
CONTEXT_BINS = ((0.0, 0.1, "lt0.1"), (0.1, 0.3, "0.1to0.3"), (0.3, math.inf, "ge0.3"))
CONTEXTS = ("vegetation", "bright", "cloud_haze", "water")


def outcomes(outlines: dict[str, list], crs, gsd_m: float) -> gpd.GeoDataFrame:
    """One row per counted object of a scene: outcome (tp/fp/fn), ground area, GSD, geometry in EPSG:3857."""
    kinds = [k for k, geoms in outlines.items() for _ in geoms]
    geoms = gpd.GeoSeries([g for gs in outlines.values() for g in gs], crs=crs)
    return gpd.GeoDataFrame({"outcome": kinds, "area_m2": area_m2(geoms).to_numpy(),
                             "gsd_m": gsd_m}, geometry=geoms.representative_point().to_crs("EPSG:3857"))


def _scores(frame: pd.DataFrame) -> dict:
    n = frame["outcome"].value_counts()
    tp, fp, fn = (int(n.get(k, 0)) for k in ("tp", "fp", "fn"))
    return {**{k: round(v, 6) for k, v in prf(tp, fp, fn).items()}, "tp": tp, "fp": fp, "fn": fn}


def _binned(frame: pd.DataFrame, column: str, bins) -> dict:
    return {name: _scores(frame[(frame[column] >= lo) & (frame[column] < hi)]) for lo, hi, name in bins}


def breakdowns(frame: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame | None) -> dict:
    """``{"by_size": {bin: scores}, "by_gsd": {...}, "by_vegetation": {...}, ...}`` (flat, readable keys)."""
    gsd = frame["gsd_m"].round(2)  # scenes of one zoom differ in the 4th decimal: one bin each label
    out = {"by_size": _binned(frame, "area_m2", SIZE_BINS),
           "by_gsd": {f"{g:.2f}m": _scores(frame[gsd == g]) for g in sorted(gsd.unique())}}
    if blocks is not None and len(frame):
        present = [c for c in CONTEXTS if c in blocks.columns and blocks[c].notna().any()]
        joined = gpd.sjoin(frame, blocks[[*present, "geometry"]].to_crs("EPSG:3857"), how="left",
                           predicate="within")
        for context in present:
            out[f"by_{context}"] = _binned(joined, context, CONTEXT_BINS)
    return out


def context_records(metrics: dict) -> list[dict]:
    """Plot records (group, f1, n) for the per-context bars."""
    return [{"group": f"{key[3:]} {name}", "f1": s["f1"], "objects": s["tp"] + s["fp"] + s["fn"]}
            for key, bins in metrics.items() if key.startswith("by_") for name, s in bins.items()]
