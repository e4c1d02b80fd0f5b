"""The catalog held in memory for live queries: loaded once (``data/catalog``, rebuilt when out of date), queried
with :func:`geofoundry.select.query.query`, the select stage's own code path."""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..catalog import build
from ..catalog.scan import COUNT_PREFIX
from ..config import CONTEXTS, GeofenceConfig, SelectConfig
from ..errors import GeofoundryError
from ..select.changes import apply_changes
from ..select.geofence import fence_3857
from ..select.pinned import read_pinned
from ..select.query import Selection, query

log = logging.getLogger(__name__)
BINS = 20  # histogram bins of each context over [0, 1]
SCENE_ATTRIBUTES = ("sensor", "gsd_m", "acquired", "band_names")  # on the catalog's block rows, for other readers
QUERY_KEYS = ("classes", "sites", "sensors", "gsd_range", "dates", "contexts", "geofence", "min_valid_frac")


@dataclass(frozen=True)
class DataSource:
    """What the dashboard works on: the project's params file and ``select:`` section, its raw dataset, where the
    catalog is kept and the pinned blocks file (``select.split.pinned``), if any."""

    params_path: Path
    select: SelectConfig
    raw: Path
    catalog_dir: Path
    pinned: Path | None = None


def load_catalog(raw: Path, out: Path, block_size_m: float, context_gsd_m: float):
    """(scenes, cells) of the catalog in ``out``, built there first when missing or out of date."""
    key = build.catalog_key(raw, block_size_m, context_gsd_m)
    stamp = out / "catalog.json"
    current = stamp.is_file() and json.loads(stamp.read_text()) == key
    if not current:
        log.info("catalog %s is missing or out of date: building it (geofoundry catalog)", out)
        build.run(raw, out, block_size_m, context_gsd_m)
    return gpd.read_parquet(out / "scenes.parquet"), gpd.read_parquet(out / "blocks.parquet")


def _histogram(values: pd.Series) -> list[int]:
    v = values.to_numpy(dtype=float)
    return np.histogram(v[np.isfinite(v)], bins=BINS, range=(0.0, 1.0))[0].tolist()


class CatalogStore:
    """The catalog, its facets, and the query (cached by its parameters)."""

    def __init__(self, source: DataSource):
        self.source = source
        cfg = source.select
        self.scenes, self.cells = load_catalog(source.raw, source.catalog_dir, cfg.split.block_size_m,
                                               cfg.context_gsd_m)
        self.scenes = self.scenes.drop(columns=[c for c in ("bbox",) if c in self.scenes])
        # the query needs no scene attribute on the block rows; its strings as objects are cheaper to copy
        self.cells = self.cells.drop(columns=[c for c in ("bbox", *SCENE_ATTRIBUTES) if c in self.cells])
        for col in ("block_id", "scene_id", "site", "group"):
            self.cells[col] = self.cells[col].astype(object)
        self.pinned = read_pinned(source.pinned, cfg.split.block_size_m) if source.pinned else None
        self.levels = sorted(c[len(COUNT_PREFIX):] for c in self.cells.columns if c.startswith(COUNT_PREFIX))
        self._cache: OrderedDict[str, tuple[SelectConfig, Selection | str]] = OrderedDict()
        self._lock = threading.Lock()
        self.run({})  # the project's own selection: compiles the split loop before the first request

    def facets(self) -> dict:
        """What the filters offer: class paths (objects in the catalog), sites, sensors, GSD and date ranges, context
        histograms, the scene footprints (lon/lat) and the current ``select:`` values."""
        s, c = self.scenes, self.cells
        merged = c.groupby(["ix", "iy"])[[COUNT_PREFIX + p for p in self.levels]].max().sum()
        dates = pd.to_datetime(s["acquired"].replace("", None), errors="coerce", format="ISO8601").dropna()
        footprints = s[["scene_id", "site", "sensor", "gsd_m", "acquired", "objects", "nodata"]].copy()
        footprints["valid_frac"] = 1 - footprints.pop("nodata").fillna(1.0)
        footprints = gpd.GeoDataFrame(footprints, geometry=shapely.simplify(s.geometry.values, 0.05), crs=s.crs)
        return {
            "block_size_m": self.source.select.split.block_size_m,
            "classes": [{"path": p, "objects": int(merged[COUNT_PREFIX + p])} for p in self.levels],
            "sites": s.groupby("site").size().astype(int).to_dict(),
            "sensors": s.groupby("sensor").size().astype(int).to_dict(),
            "gsd": [float(s["gsd_m"].min()), float(s["gsd_m"].max())],
            "dates": [str(dates.min().date()), str(dates.max().date())] if len(dates) else [],
            "contexts": {k: {"known": bool(c[k].notna().any()), "histogram": _histogram(c[k])} for k in CONTEXTS},
            "bins": BINS,
            "scenes": json.loads(footprints.to_crs("EPSG:4326").to_json(drop_id=True)),
            "select": {k: v for k, v in self.source.select.model_dump(mode="json").items() if k in QUERY_KEYS},
        }

    def run(self, changes: dict) -> tuple[SelectConfig, Selection | str]:
        """The selection for ``changes`` to the project's ``select:`` (keys of :data:`QUERY_KEYS`), or, when the
        query is valid but selects nothing usable, the message that says why. Raises on an invalid query."""
        unknown = sorted(set(changes) - set(QUERY_KEYS))
        if unknown:
            raise GeofoundryError(f"select query: {', '.join(unknown)} cannot be changed here (only "
                                  f"{', '.join(QUERY_KEYS)}); edit params.yaml and restart the dashboard")
        key = json.dumps(changes, sort_keys=True, default=str)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        cfg, _ = apply_changes(self.source.select, changes)
        fence = self._fence(cfg.geofence)
        try:
            result: Selection | str = query(self.scenes, self.cells, cfg, fence, self.pinned)
        except GeofoundryError as e:
            result = str(e)
        with self._lock:
            self._cache[key] = (cfg, result)
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return cfg, result

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one store per app, kept for the app's life
    def _fence(self, geofence: GeofenceConfig):
        """The geofence in EPSG:3857, parsed once per include/exclude pair (the map redraws it on every query)."""
        return fence_3857(geofence)

    def level_counts(self, sel: Selection) -> dict[str, int]:
        """Objects per class path level on the selected ground (each block counted once, as the selection does)."""
        cols = [COUNT_PREFIX + p for p in self.levels if COUNT_PREFIX + p in sel.per_scene]
        rows = sel.per_scene[cols]
        per_block = (rows if len(sel.per_scene) == len(sel.blocks) else  # one scene per block
                     rows.groupby([sel.per_scene["ix"], sel.per_scene["iy"]], sort=False).max()).sum()
        return {c[len(COUNT_PREFIX):]: int(v) for c, v in per_block.items()}

    def histograms(self, sel: Selection) -> dict[str, list[int]]:
        return {k: _histogram(sel.blocks[k]) for k in CONTEXTS if k in sel.blocks}
