"""One revision's detections on its test scenes, judged as the evaluate stage judges them: its prediction rasters,
vectors, selection and ``evaluate:`` params go through ``evaluate.scene.evaluate_scene`` (one-to-one IoU
matching), so each predicted object is a true or a false positive and each missed truth object a false negative,
and the counts are those of its ``reports/evaluate.json``. Also its precision-recall and per-context plot data."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import geopandas as gpd
import numpy as np
import shapely
import yaml
from pydantic import ValidationError

from ..config import EvaluateConfig, format_validation_error
from ..errors import GeofoundryError
from ..evaluate.run import load_selection
from ..evaluate.scene import evaluate_scene
from ..io.labelled import COLUMN as AREA_COLUMN
from ..io.labelled import PATH_COLUMN as AREA_PATH_COLUMN
from .revisions import Missing, RevisionFiles

PREDICTIONS = "data/predictions/test"  # the maps the evaluate stage scored
FLAT_PREDICTIONS = "data/predictions"  # where they were before the predict stage mapped the validation area too
VECTORS = "data/vectors"
SELECTION = "data/selection"
RAW = "data/raw"
PLOTS = {"object_pr": "plots/evaluate/object_pr.json", "per_context": "plots/evaluate/per_context.json"}
REPORT = "reports/evaluate.json"
OUTCOMES = ("tp", "fp", "fn")
PRECISION_DEG = 1e-7  # coordinates sent to the browser: about 1 cm


def prediction_files(files: RevisionFiles) -> dict[str, str]:
    """Scene id → the revision's prediction raster (the scenes its evaluate stage scored): in
    ``data/predictions/test``, or for a revision made before the validation maps, in ``data/predictions``."""
    try:
        folder, names = PREDICTIONS, files.names(PREDICTIONS)
    except Missing as missing:
        try:
            folder, names = FLAT_PREDICTIONS, [n for n in files.names(FLAT_PREDICTIONS) if n.endswith(".tif")]
        except Missing:
            names = []
        if not names:
            raise missing from None
    return {PurePosixPath(n).stem: f"{folder}/{n}" for n in names if n.endswith(".tif")}


def _config(files: RevisionFiles) -> EvaluateConfig:
    try:
        params = yaml.safe_load(files.text("params.yaml")) or {}
        return EvaluateConfig.model_validate(params.get("evaluate") or {})
    except yaml.YAMLError as e:
        raise GeofoundryError(f"params.yaml of {files.label}: not YAML ({e})") from None
    except ValidationError as e:
        raise GeofoundryError(format_validation_error(e, f"params.yaml of {files.label}, evaluate:")) from None


def _raw_file(files: RevisionFiles, rel: str) -> tuple[Path, str]:
    """A file of the raw dataset (labels, labelled area) as the revision has it; the workspace's when the revision
    does not version the raw dataset (then ``"workspace"`` is returned with it, and shown)."""
    try:
        return files.path(f"{RAW}/{rel}"), "revision"
    except Missing as e:
        fallback = files.root / RAW / rel
        if e.tracked or not fallback.is_file():
            raise
        return fallback, "workspace"


def _features(result, names: list[str], crs, scene: str) -> list[dict]:
    """GeoJSON features (EPSG:4326) of a scene's outcomes: outcome, class, score (predictions), ground area."""
    classes = {o: [] for o in OUTCOMES}
    scores = {"tp": [], "fp": []}
    for k, objs in enumerate(result.objects, start=1):
        for outcome, n in (("tp", objs.tp), ("fp", objs.fp), ("fn", objs.fn)):
            classes[outcome] += [names[k]] * n
        scores["tp"] += objs.scores[objs.is_tp].tolist()
        scores["fp"] += objs.scores[~objs.is_tp].tolist()
    features = []
    for outcome in OUTCOMES:
        geoms = gpd.GeoSeries(result.outlines[outcome], crs=crs)
        if not len(geoms):
            continue
        area = geoms.area.to_numpy() if geoms.crs.is_projected else np.full(len(geoms), np.nan)
        lonlat = shapely.set_precision(geoms.to_crs("EPSG:4326").values, PRECISION_DEG)
        for i, geom in enumerate(lonlat):
            props = {"id": f"{scene}/{outcome}/{i}", "scene": scene, "outcome": outcome, "class": classes[outcome][i],
                     "score": round(scores[outcome][i], 4) if outcome in scores else None,
                     "area_m2": None if np.isnan(area[i]) else round(float(area[i]), 1)}
            features.append({"type": "Feature", "properties": props,
                             "geometry": json.loads(shapely.to_geojson(geom))})
    return features


def _report_counts(files: RevisionFiles) -> dict | None:
    try:
        report = json.loads(files.text(REPORT))
        return {k: int(report["object"][k]) for k in OUTCOMES}
    except (Missing, KeyError, TypeError, ValueError):
        return None


def detections(files: RevisionFiles) -> dict:
    """``{"scenes": {id: {tp, fp, fn}}, "counts": {tp, fp, fn}, "report": counts of reports/evaluate.json,
    "features": [...], "labels": "revision" | "workspace", "evaluate": {...}}`` of one revision."""
    cfg = _config(files)
    preds = prediction_files(files)
    if not preds:
        raise GeofoundryError(f"{PREDICTIONS} of {files.label}: no prediction rasters (*.tif)")
    files.path(f"{SELECTION}/classes.json")
    scenes, names, paths = load_selection(files.path(f"{SELECTION}/scenes.parquet").parent)
    per_scene, features, sources = {}, [], set()
    for scene, rel in preds.items():
        if scene not in scenes.index:
            raise GeofoundryError(f"{rel} of {files.label}: no scene {scene!r} in {SELECTION}/scenes.parquet")
        row = scenes.loc[scene].copy()
        labels, source = _raw_file(files, str(row["labels"]))
        row["labels_path"], sources = str(labels), sources | {source}
        if str(row.get(AREA_COLUMN) or ""):
            area, source = _raw_file(files, str(row[AREA_COLUMN]))
            row[AREA_PATH_COLUMN], sources = str(area), sources | {source}
        result, grid = evaluate_scene(row, files.path(rel), files.path(f"{VECTORS}/{scene}.gpkg"), names[1:],
                                      paths[1:], cfg)
        per_scene[scene] = {o: sum(getattr(c, o) for c in result.objects) for o in OUTCOMES}
        features += _features(result, names, grid.crs, scene)
    counts = {o: sum(s[o] for s in per_scene.values()) for o in OUTCOMES}
    return {"scenes": per_scene, "counts": counts, "report": _report_counts(files), "features": features,
            "labels": "workspace" if "workspace" in sources else "revision", "evaluate": cfg.model_dump()}


def plots(files: RevisionFiles) -> dict:
    """The revision's object precision-recall curve and per-context F1 records (``plots/evaluate/``); a plot file
    it lacks is None, with the reason under ``"missing"``."""
    out: dict = {"missing": {}}
    for key, rel in PLOTS.items():
        try:
            out[key] = json.loads(files.text(rel))
        except Missing as e:
            out[key] = None
            out["missing"][key] = str(e)
        except ValueError as e:
            raise GeofoundryError(f"{rel} of {files.label}: not JSON ({e})") from None
    return out
