"""Build the catalog: one GeoParquet of scenes and one of (scene, block) rows, queryable with geopandas or DuckDB."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from ..config import CONTEXTS
from ..errors import GeofoundryError
from ..io.atomic import atomic_path, write_json
from ..io.grid import GRID_CRS, block_id
from ..io.raster import bounded_gdal_cache
from ..io.raw import check_image, load_scenes
from ..progress import track
from .scan import COUNT_PREFIX, SceneScan, scan_scene

log = logging.getLogger(__name__)
EXPORT_FORMATS = {"gpkg": "GeoPackage", "fgb": "FlatGeobuf"}
SCENE_COLUMNS = ("scene_id", "site", "country", "sensor", "gsd_m", "acquired", "crs", "width", "height", "bands",
                 "dtype", "band_names", "nodata", "group")  # scenes.csv's nodata becomes nodata_value


def scene_record(row: pd.Series, scan: SceneScan) -> dict:
    counts = scan.cells.filter(like=COUNT_PREFIX).sum().astype(int).to_dict()
    rec = {k: row[k] for k in SCENE_COLUMNS}
    rec["nodata_value"] = rec.pop("nodata")
    rec.update(valid_area_m2=float(scan.cells["valid_area_m2"].sum()), blocks=len(scan.cells),
               objects=len(scan.labels), **{c: scan.contexts.get(c, np.nan) for c in CONTEXTS}, **counts)
    return rec


def block_records(row: pd.Series, scan: SceneScan) -> gpd.GeoDataFrame:
    cells = scan.cells.copy()
    cells.insert(0, "block_id", [block_id(ix, iy) for ix, iy in zip(cells["ix"], cells["iy"])])
    for k in ("scene_id", "site", "sensor", "gsd_m", "acquired", "band_names", "group"):
        cells[k] = row[k]
    return cells


def build_catalog(scenes: pd.DataFrame, block_size_m: float, context_gsd_m: float, what: str = "catalog"):
    """(scenes, blocks) GeoDataFrames in EPSG:3857: scene footprints and (scene, grid cell) rows. ``what`` names
    the progress bar."""
    recs, geoms, blocks = [], [], []
    for _, row in track(scenes.iterrows(), f"{what}: scan scenes", total=len(scenes)):
        check_image(row)
        scan = scan_scene(row, block_size_m, context_gsd_m)
        recs.append(scene_record(row, scan))
        geoms.append(scan.footprint)
        blocks.append(block_records(row, scan))
    scene_gdf = gpd.GeoDataFrame(recs, geometry=geoms, crs=GRID_CRS)
    block_gdf = gpd.GeoDataFrame(pd.concat(blocks, ignore_index=True), geometry="geometry", crs=GRID_CRS)
    count_cols = [c for c in block_gdf.columns if c.startswith(COUNT_PREFIX)]
    block_gdf[count_cols] = block_gdf[count_cols].fillna(0).astype(int)
    scene_gdf[count_cols] = scene_gdf.reindex(columns=count_cols).fillna(0).astype(int)
    return scene_gdf, block_gdf


def write_geoparquet(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """GeoParquet with a bbox covering column, so that DuckDB can filter by area without the spatial extension."""
    with atomic_path(path) as tmp:
        gdf.to_parquet(tmp, index=False, write_covering_bbox=True)


def write_export(layers: dict[str, gpd.GeoDataFrame], out_dir: Path, fmt: str) -> list[Path]:
    """The layers for GIS software and older GDAL: ``catalog.gpkg`` (one layer each) or ``<layer>.fgb``."""
    if fmt not in EXPORT_FORMATS:
        raise GeofoundryError(f"catalog format {fmt!r}: choose from {sorted(EXPORT_FORMATS)}")
    if fmt == "gpkg":
        path = out_dir / "catalog.gpkg"
        with atomic_path(path) as tmp:
            for name, gdf in layers.items():
                gdf.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")
        return [path]
    paths = [out_dir / f"{name}.fgb" for name in layers]
    for path, gdf in zip(paths, layers.values()):
        with atomic_path(path) as tmp:
            gdf.to_file(tmp, driver="FlatGeobuf", engine="pyogrio")
    return paths


def catalog_key(raw_root: Path, block_size_m: float, context_gsd_m: float) -> dict:
    """What a catalog is made from: the grid, the context GSD, ``scenes.csv`` and the size and time of each file it
    lists (``catalog.json`` beside the tables holds it; a catalog whose key differs is out of date)."""
    raw = load_scenes(raw_root)
    files = sorted({*raw["image_path"], *raw["labels_path"]})
    stamp = "\n".join(f"{p} {Path(p).stat().st_size} {Path(p).stat().st_mtime_ns}" for p in files)
    return {"block_size_m": float(block_size_m), "context_gsd_m": float(context_gsd_m),
            "scenes_csv_sha256": hashlib.sha256((Path(raw_root) / "scenes.csv").read_bytes()).hexdigest(),
            "files_sha256": hashlib.sha256(stamp.encode()).hexdigest()}


def run(raw_root: Path, out_dir: Path, block_size_m: float = 150.0, context_gsd_m: float = 1.0,
        formats: tuple[str, ...] = ()) -> dict:
    """Write ``scenes.parquet``, ``blocks.parquet`` and ``catalog.json`` (:func:`catalog_key`) under ``out_dir``, and
    the same layers in each of ``formats`` (``gpkg``, ``fgb``); return a short summary."""
    for fmt in formats:
        if fmt not in EXPORT_FORMATS:
            raise GeofoundryError(f"catalog format {fmt!r}: choose from {sorted(EXPORT_FORMATS)}")
    key = catalog_key(raw_root, block_size_m, context_gsd_m)
    with bounded_gdal_cache():
        scenes, blocks = build_catalog(load_scenes(raw_root), block_size_m, context_gsd_m)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_geoparquet(scenes, out_dir / "scenes.parquet")
    write_geoparquet(blocks, out_dir / "blocks.parquet")
    write_json(out_dir / "catalog.json", key)
    exported = [str(p) for fmt in formats for p in write_export({"scenes": scenes, "blocks": blocks}, out_dir, fmt)]
    log.info("catalog: %d scenes, %d scene blocks → %s", len(scenes), len(blocks), out_dir)
    return {"scenes": len(scenes), "blocks": len(blocks), "out": str(out_dir), "exported": exported}
