"""Post-processing stage: probability GeoTIFFs → one GeoPackage of objects per scene, plus ``all.gpkg``."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window

from ..config import PostprocessConfig
from ..errors import GeofoundryError
from ..io.debris import outputs_in
from ..io.gpkg import write_gpkg
from ..io.raster import bounded_gdal_cache
from ..io.units import area_m2
from ..models.outputs import probability_classes
from ..progress import track
from .registry import Chain, build_chain
from .state import SceneState
from .windows import needs_windows, run_windowed

log = logging.getLogger(__name__)
LAYER = "objects"
ALL = "all"


def read_scene(path: Path, class_names: list[str]) -> SceneState:
    """A probability GeoTIFF (one uint8 band per class, round(255·p), internal mask = valid) as a SceneState.

    Its classes are its band descriptions ``p(<class>)`` (``class_names`` when it has none): ``class_names``, the
    object classes, then any auxiliary outputs of the model (``border``, ``contact``).
    """
    with rasterio.open(path) as ds:
        return read_window(ds, class_names)


def read_window(ds: rasterio.DatasetReader, class_names: list[str], window: Window | None = None) -> SceneState:
    """The SceneState of one window of an open probability GeoTIFF (None: all of it); see :func:`read_scene`."""
    names, auxiliary = probability_classes(ds, class_names)
    return SceneState(
        transform=ds.window_transform(window) if window is not None else ds.transform,
        crs=ds.crs,
        valid=ds.dataset_mask(window=window) > 0,
        class_names=tuple(names),
        prob=ds.read(window=window).astype(np.float32) / 255,
        auxiliary=auxiliary,
    )


def process_scene(path: Path, class_names: list[str], chain: Chain, cfg: PostprocessConfig) -> gpd.GeoDataFrame:
    """The chain's objects for one scene: whole, or the raster part by windows when the scene is larger than one."""
    def read(ds: rasterio.DatasetReader, window: Window | None = None) -> SceneState:
        return read_window(ds, class_names, window)

    with rasterio.open(path) as ds:
        if needs_windows(ds, cfg.window_px):
            return run_windowed(ds, read, chain, cfg.window_px, cfg.halo_px, cfg.workers).objects
        return chain(read(ds)).objects


def write_objects(objects: gpd.GeoDataFrame, path: Path) -> None:
    """Write layer ``objects`` atomically and reproducibly; always MultiPolygon so that empty and full files share
    one schema."""
    write_gpkg(objects, path, LAYER, geometry_type="MultiPolygon", promote_to_multi=True)


def run(cfg: PostprocessConfig, predictions_dir: Path, vectors_dir: Path, class_names: list[str]) -> dict:
    """Run the ``cfg.steps`` chain on every ``<scene_id>.tif`` in ``predictions_dir``.

    Writes ``vectors_dir/<scene_id>.gpkg`` (objects' CRS: the scene CRS unless the chain reprojects) with at least
    ``class_id``, ``class_name``, ``score``, ``area_m2``; ``vectors_dir/all.gpkg`` holds every scene in EPSG:4326
    with ``scene_id``. Other ``.gpkg`` files in ``vectors_dir`` are removed. ``class_names``: the object classes
    (background excluded); the rasters' band descriptions may add the model's auxiliary classes after them.
    """
    with bounded_gdal_cache():  # blocks of the maps read by windows: memory bounded whatever their size
        return _run(cfg, Path(predictions_dir), Path(vectors_dir), class_names)


def _run(cfg: PostprocessConfig, predictions_dir: Path, vectors_dir: Path, class_names: list[str]) -> dict:
    chain = build_chain(cfg.steps)
    tifs = outputs_in(predictions_dir, ".tif")
    if not tifs:
        raise GeofoundryError(f"{predictions_dir}: no <scene_id>.tif probability rasters (run the predict stage)")
    if any(t.stem == ALL for t in tifs):
        raise GeofoundryError(f"{predictions_dir}: scene id {ALL!r} is reserved for the merged {ALL}.gpkg")
    counts: dict[str, int] = {}
    merged = []
    log.info("postprocess chain: %s", chain)
    for tif in track(tifs, description="postprocess"):
        try:
            objects = process_scene(tif, class_names, chain, cfg)
        except GeofoundryError as e:
            raise GeofoundryError(f"{tif}: {e}") from None
        if "area_m2" not in objects.columns:
            objects = objects.assign(area_m2=area_m2(objects.geometry).to_numpy())
        write_objects(objects, vectors_dir / f"{tif.stem}.gpkg")
        merged.append(objects.to_crs("EPSG:4326").assign(scene_id=tif.stem))
        counts[tif.stem] = len(objects)
    write_objects(gpd.GeoDataFrame(pd.concat(merged, ignore_index=True), crs="EPSG:4326"), vectors_dir / f"{ALL}.gpkg")
    for stale in outputs_in(vectors_dir, ".gpkg"):
        if stale.stem not in counts and stale.stem != ALL:
            stale.unlink()
    return {"scenes": len(counts), "objects": sum(counts.values()), "objects_per_scene": counts}
