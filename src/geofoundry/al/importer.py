"""``geofoundry al import``: merge annotators' polygons into the raw dataset and grow its labelled area.

The labels file is any vector file with a CRS (the handout's ``tiles.gpkg``: its ``labels`` layer). The ground they
cover is ``--area`` or, by default, the handout's ``tiles`` layer. Every polygon must be valid, polygonal, inside
that ground and off the test blocks of the selection; otherwise nothing is written and the error names the feature
ids. Each scene whose valid pixels the ground reaches gets the polygons that touch its part of the ground (labels are
per scene, RAW_LAYOUT.md) and a labelled area grown by that part (a scene labelled everywhere stays so). A polygon
equal to one the scene already has (IoU ≥ 0.99) is skipped, so importing a file twice adds nothing.

A scene that gets new ground needs a labelled area already (``scenes.csv`` column ``labelled_area``; a file with no
feature means nothing labelled yet): a scene without one is labelled everywhere, and only gets the new polygons.
Nothing already labelled is lost: labels are appended, labelled areas only grow. Every file is written beside its
target first and renamed only when all are ready; labels go in before the labelled areas that make them count.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from ..config import check_class_path
from ..errors import GeofoundryError
from ..io.geometry import reproject
from ..io.labelled import PATH_COLUMN, area_geojson, read_area
from ..io.raster import valid_footprint
from ..io.raw import load_scenes
from ..io.units import area_m2
from ..io.warp import open_scene
from .handout import LABELS_LAYER, TILES_LAYER

DUPLICATE_IOU = 0.99
SHOWN = 10  # feature ids named in an error


def _layers(path: Path) -> list[str]:
    try:
        return [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except pyogrio.errors.DataSourceError as e:
        raise GeofoundryError(f"{path}: cannot read it as a vector file ({e})") from None


def read_vectors(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    """A layer (default: the only or first one) with its feature ids as the index; it must have a CRS."""
    layers = _layers(path)
    layer = layer if layer in layers else layers[0]
    frame = gpd.read_file(path, layer=layer, engine="pyogrio", fid_as_index=True)
    if frame.crs is None:
        raise GeofoundryError(f"{path}: layer {layer!r} has no CRS; save it with one (the handout's is the scenes')")
    return frame


def _ids(frame: pd.DataFrame, mask) -> str:
    ids = [str(i) for i in frame.index[np.asarray(mask, dtype=bool)]]
    return ", ".join(ids[:SHOWN]) + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")


def checked_labels(path: Path, default_class_path: str | None) -> gpd.GeoDataFrame:
    """The new polygons in EPSG:4326 with ``class`` and ``class_path``; bad ones refused, named by feature id."""
    frame = read_vectors(path, LABELS_LAYER)
    if frame.empty:
        raise GeofoundryError(f"{path}: no features to import")
    geoms = frame.geometry.values
    problems = []
    missing = frame.geometry.isna().to_numpy() | shapely.is_empty(geoms)
    if missing.any():
        problems.append(f"feature(s) {_ids(frame, missing)} have no geometry")
    polygonal = np.isin(shapely.get_type_id(geoms), [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON])
    if (bad := ~missing & ~polygonal).any():
        problems.append(f"feature(s) {_ids(frame, bad)} are not polygons")
    invalid = ~missing & polygonal & ~shapely.is_valid(geoms)
    for fid, geom in zip(frame.index[invalid][:SHOWN], geoms[invalid][:SHOWN]):
        problems.append(f"feature {fid} is an invalid polygon ({shapely.is_valid_reason(geom)}); fix it in QGIS "
                        "(Vector ‣ Geometry Tools ‣ Check Validity) and import again")
    given = frame["class_path"] if "class_path" in frame.columns else pd.Series(None, index=frame.index, dtype=object)
    paths = given.where(given.notna() & (given.astype(str).str.strip() != ""), default_class_path)
    if paths.isna().any():
        problems.append(f"feature(s) {_ids(frame, paths.isna())} have no class_path; fill it in or pass --class-path")
    for fid, value in paths.dropna().items():
        try:
            paths[fid] = check_class_path(str(value))
        except ValueError as e:
            problems.append(f"feature {fid}: {e}")
    if problems:
        raise GeofoundryError(f"{path}: nothing imported:\n  " + "\n  ".join(problems))
    names = frame["class"] if "class" in frame.columns else pd.Series(None, index=frame.index, dtype=object)
    names = names.where(names.notna() & (names.astype(str).str.strip() != ""), paths.str.split("/").str[-1])
    ids = frame["id"] if "id" in frame.columns else pd.Series(None, index=frame.index, dtype=object)
    out = gpd.GeoDataFrame({"class": names, "class_path": paths, "id": ids}, geometry=frame.geometry, crs=frame.crs)
    return out.to_crs("EPSG:4326")


def labelled_ground(labels_file: Path, area_file: Path | None) -> shapely.Geometry:
    """The ground the labels cover, in EPSG:4326: ``area_file`` or the handout's ``tiles`` layer."""
    if area_file is None:
        if TILES_LAYER not in _layers(labels_file):
            raise GeofoundryError(f"{labels_file}: has no {TILES_LAYER!r} layer; say which ground these labels "
                                  "cover completely with --area <vector file>")
        area_file, layer = labels_file, TILES_LAYER
    else:
        layer = None
    frame = read_vectors(area_file, layer).to_crs("EPSG:4326")
    area = shapely.make_valid(shapely.union_all(frame.geometry.values))
    if area.is_empty or area.area == 0:
        raise GeofoundryError(f"{area_file}: the labelled ground it gives has no area")
    return area


def refuse_test_ground(labels: gpd.GeoDataFrame, area: shapely.Geometry, blocks_path: Path, where: Path) -> None:
    """Neither the new ground nor a new polygon may reach a test block of the selection."""
    if not blocks_path.is_file():
        raise GeofoundryError(f"{blocks_path}: missing; run the select stage first (it says which ground is test)")
    blocks = gpd.read_parquet(blocks_path)
    test = blocks[blocks["split"] == "test"].to_crs("EPSG:4326")
    on_test = test[shapely.area(shapely.intersection(test.geometry.values, area)) > 0]
    if len(on_test):
        raise GeofoundryError(f"{where}: the labelled ground overlaps test block(s) {', '.join(on_test['block_id'])}; "
                              "test ground is never labelled through active learning (it would leak into training)")
    test_area = shapely.union_all(test.geometry.values)
    hit = shapely.area(shapely.intersection(labels.geometry.values, test_area)) > 0
    if hit.any():
        raise GeofoundryError(f"{where}: feature(s) {_ids(labels, hit)} reach test blocks; nothing imported")
    outside = ~shapely.intersects(labels.geometry.values, area)
    if outside.any():
        raise GeofoundryError(f"{where}: feature(s) {_ids(labels, outside)} lie outside the labelled ground being "
                              "added (the tiles, or --area); nothing imported")


def scene_footprint(row: pd.Series) -> shapely.Geometry:
    """The scene's valid pixels as a polygon in EPSG:4326."""
    gsd = float(row["gsd_m"])
    with open_scene(row["image_path"], gsd, gsd, [1]) as grid:
        return reproject(valid_footprint(grid.ds), grid.ds.crs, "EPSG:4326", densify_parts=64)


def _duplicate(geoms: np.ndarray, existing: list) -> np.ndarray:
    """Whether each of ``geoms`` equals (IoU ≥ 0.99) an existing polygon."""
    if not existing or not len(geoms):
        return np.zeros(len(geoms), dtype=bool)
    old = np.asarray(existing, dtype=object)
    a, b = shapely.STRtree(old).query(geoms, predicate="intersects")
    inter = shapely.area(shapely.intersection(geoms[a], old[b]))
    iou = inter / np.maximum(shapely.area(geoms[a]) + shapely.area(old[b]) - inter, 1e-30)
    out = np.zeros(len(geoms), dtype=bool)
    out[a[iou >= DUPLICATE_IOU]] = True
    return out


def _feature(rec, source: str) -> dict:
    props = {"class": str(rec["class"]), "class_path": str(rec["class_path"]), "source": source}
    if rec["id"] is not None and not (isinstance(rec["id"], float) and np.isnan(rec["id"])):
        props["id"] = rec["id"].item() if hasattr(rec["id"], "item") else rec["id"]
    return {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(rec.geometry)}


def write_all(contents: list[tuple[Path, str]]) -> None:
    """Write every file beside its target, then rename them in order; on an error before the renames nothing
    changes."""
    staged = []
    try:
        for path, text in contents:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            staged.append((tmp, path))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def import_labels(labels_file: Path, raw_root: Path, blocks_path: Path, area_file: Path | None = None,
                  default_class_path: str | None = None) -> dict:
    """Merge ``labels_file``'s polygons into ``raw_root`` (see the module docstring); return what changed."""
    labels_file, raw_root = Path(labels_file), Path(raw_root)
    labels = checked_labels(labels_file, default_class_path)
    area = labelled_ground(labels_file, area_file)
    refuse_test_ground(labels, area, blocks_path, labels_file)
    source = f"al-import:{labels_file.name}"
    geoms = labels.geometry.values
    collections: dict[Path, dict] = {}  # labels files (a file two scenes share is loaded once)
    areas: dict[Path, tuple[shapely.Geometry, shapely.Geometry]] = {}  # labelled-area file: (as it was, grown)
    report = {}
    for _, row in load_scenes(raw_root).iterrows():
        ground = area.intersection(scene_footprint(row))
        if ground.is_empty or ground.area == 0:
            continue
        path = Path(row["labels_path"])
        fc = collections.setdefault(path, json.loads(path.read_text()))
        features = fc.setdefault("features", [])
        existing = [shapely.geometry.shape(f["geometry"]) for f in features if f.get("geometry")]
        mine = shapely.intersects(geoms, ground)
        fresh = mine & ~_duplicate(geoms, existing)
        features.extend(_feature(rec, source) for _, rec in labels[fresh].iterrows())
        gained, everywhere = 0.0, not str(row.get(PATH_COLUMN, "") or "")
        if not everywhere:  # a scene labelled wherever it is valid has nothing to grow
            area_path = Path(row[PATH_COLUMN])
            before, grown = areas.get(area_path) or (read_area(area_path),) * 2
            areas[area_path] = (before, shapely.union_all([grown, ground]))
            new_ground = ground.difference(before)
            if not new_ground.is_empty:
                gained = float(area_m2(gpd.GeoSeries([new_ground], crs="EPSG:4326")).sum())
        report[row["scene_id"]] = {"labels_added": int(fresh.sum()), "duplicates_skipped": int((mine & ~fresh).sum()),
                                   "labelled_m2_added": round(gained, 1), "labelled_everywhere": everywhere}
    if not report:
        raise GeofoundryError(f"{labels_file}: the labelled ground reaches no valid pixel of any scene in {raw_root}")
    write_all([(p, json.dumps(fc) + "\n") for p, fc in collections.items()]
              + [(p, area_geojson(grown)) for p, (_, grown) in areas.items()])
    return {"scenes": report, "labels_added": sum(r["labels_added"] for r in report.values()),
            "labelled_m2_added": round(sum(r["labelled_m2_added"] for r in report.values()), 1)}
