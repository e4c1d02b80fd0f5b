"""Object metrics broken down by object size, by the context of the block an object lies in, and by GSD; recall of
truth objects that touch another (within :data:`TOUCH_M`) and of isolated ones.

Each outcome is placed by one geometry: a true positive and a false positive by the predicted polygon, a false
negative by the truth polygon. Contexts (vegetation, bright, cloud/haze, water fractions) come from the select
stage's blocks, so a breakdown by context needs ``blocks.parquet`` with those columns.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd

from ..io.units import area_m2, to_metres
from .objects import prf, ratio

SIZE_BINS = ((0.0, 50.0, "lt50m2"), (50.0, 200.0, "50to200m2"), (200.0, math.inf, "ge200m2"))
CONTEXT_BINS = ((0.0, 0.1, "lt0.1"), (0.1, 0.3, "0.1to0.3"), (0.3, math.inf, "ge0.3"))
CONTEXTS = ("vegetation", "bright", "cloud_haze", "water")
OUTCOMES = ("tp", "fp", "fn")
TOUCH_M = 0.5  # truth objects this close to another truth object are "touching" (adjoining roofs, shared walls)


def outcomes(outlines: dict[str, list], crs, gsd_m: float) -> gpd.GeoDataFrame:
    """One row per counted object of a scene: outcome (tp/fp/fn), ground area, GSD, geometry in EPSG:3857."""
    kinds = [k for k in OUTCOMES for _ in outlines[k]]
    geoms = gpd.GeoSeries([g for k in OUTCOMES for g in outlines[k]], crs=crs)
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


def truth_contacts(outlines: dict[str, list], crs) -> pd.DataFrame:
    """One row per truth object of a scene: ``found`` (matched) and ``touching`` (within :data:`TOUCH_M` ground
    metres of another truth object of the scene)."""
    found, missed = outlines["found"], outlines["fn"]
    geoms = to_metres(gpd.GeoSeries([*found, *missed], crs=crs)).geoms
    near = geoms.sindex.query(geoms.values, predicate="dwithin", distance=TOUCH_M)
    touching = np.zeros(len(geoms), dtype=bool)
    touching[near[0][near[0] != near[1]]] = True
    return pd.DataFrame({"found": np.arange(len(geoms)) < len(found), "touching": touching})


def by_touching(truth: pd.DataFrame) -> dict:
    """Recall of touching and of isolated truth objects: ``{"touching": {recall, tp, fn}, "isolated": {...}}``."""
    out = {}
    for name, rows in (("touching", truth[truth["touching"]]), ("isolated", truth[~truth["touching"]])):
        tp = int(rows["found"].sum())
        out[name] = {"recall": round(ratio(tp, len(rows)), 6), "tp": tp, "fn": len(rows) - tp}
    return out
