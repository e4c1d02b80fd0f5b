"""The run's one GeoPackage: every scene's objects in EPSG:4326 with ``scene_id``, and objects of overlapping
scenes deduplicated.

The rule: two objects of different scenes are the same object when their intersection over union, measured in
an equal-area CRS (EPSG:6933), is at least ``iou``. Objects are taken by score, highest first (ties: scene name,
then the object's order in its scene); an object is dropped when it is the same object as one already kept. So of
each group of duplicates the highest-scoring one stays, and objects of one scene never remove each other.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from ..io.gpkg import write_gpkg

EQUAL_AREA = "EPSG:6933"
LAYER = "objects"


def scene_objects(files: dict[str, Path]) -> gpd.GeoDataFrame:
    """The objects of every scene (name → its GeoPackage), in EPSG:4326, with ``scene_id``, in name order."""
    frames = []
    for name in sorted(files):
        frame = gpd.read_file(files[name], layer=LAYER)
        frame = frame.to_crs("EPSG:4326") if frame.crs is not None else frame.set_crs("EPSG:4326")
        frames.append(frame.assign(scene_id=name))
    if not frames:
        return gpd.GeoDataFrame({"scene_id": pd.Series(dtype=str)}, geometry=gpd.GeoSeries([], crs="EPSG:4326"))
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")


def dedup(objects: gpd.GeoDataFrame, iou: float) -> gpd.GeoDataFrame:
    """``objects`` without the duplicates of overlapping scenes (module docstring), in their original order."""
    if objects.empty:
        return objects
    shapes = objects.geometry.to_crs(EQUAL_AREA).make_valid().reset_index(drop=True)
    left, right = shapes.sindex.query(shapes, predicate="intersects")
    scenes = objects["scene_id"].to_numpy()
    pairs = (left != right) & (scenes[left] != scenes[right])
    left, right = left[pairs], right[pairs]
    inter = shapes.iloc[left].intersection(shapes.iloc[right], align=False).area.to_numpy()
    union = shapes.iloc[left].area.to_numpy() + shapes.iloc[right].area.to_numpy() - inter
    same = inter >= iou * np.maximum(union, 1e-12)
    duplicates: dict[int, list[int]] = {}
    for a, b in zip(left[same], right[same]):
        duplicates.setdefault(int(a), []).append(int(b))
    order = sorted(range(len(objects)), key=lambda i: (-float(objects["score"].iloc[i]), scenes[i], i))
    dropped = np.zeros(len(objects), bool)
    for i in order:
        if not dropped[i]:
            for j in duplicates.get(i, ()):
                dropped[j] = True
    return objects[~dropped].reset_index(drop=True)


def merge(files: dict[str, Path], out: Path, iou: float) -> dict:
    """Write ``out`` (layer ``objects``): the scenes' objects, deduplicated; return the counts."""
    objects = scene_objects(files)
    kept = dedup(objects, iou)
    write_gpkg(kept, out, LAYER)
    return {"objects": len(kept), "duplicates": len(objects) - len(kept)}
