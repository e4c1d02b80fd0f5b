"""A client's acceptance run: a delivered bundle on any raw-layout dataset, scored like the evaluate stage."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ..bundle.reader import Bundle
from ..config import EvaluateConfig
from ..errors import GeofoundryError
from ..io.atomic import write_json
from ..io.folders import existing_folder, writable_folder
from ..io.lock import output_lock
from ..io.raw import load_scenes
from ..models.input_spec import InputSpec
from .predict import predict_bundle

log = logging.getLogger(__name__)


def usable_scenes(scenes: pd.DataFrame, spec: InputSpec) -> tuple[pd.DataFrame, list[str]]:
    """Scenes that carry the model's bands (by name) in a dtype its stretch was fitted on; reasons for the rest."""
    keep, refused = [], []
    for _, row in scenes.iterrows():
        names = row["band_names"].split("|")
        missing = [b for b in spec.bands if b not in names]
        if missing:
            refused.append(f"{row['scene_id']}: has bands {names}, lacks {missing}")
        elif reason := spec.dtype_refusal(row["scene_id"], row["dtype"]):
            refused.append(reason)
        else:
            keep.append(row)
    return pd.DataFrame(keep), refused


def evaluate_bundle(bundle: Bundle, data_root: Path, out_dir: Path, cfg: EvaluateConfig, threads: int = 0) -> dict:
    """Predict every usable scene of ``data_root`` with ``bundle``; write under ``out_dir`` the headline metrics
    (``evaluate.json``, the keys of ``metrics/evaluate.json``), the full report (``report.json``, as
    ``reports/evaluate.json``), plots and overlays; return the report. ``out_dir`` is locked: one run at a time."""
    writable_folder(out_dir, "--out")
    with output_lock(out_dir, recursive=False), output_lock(out_dir / "plots"):
        return _evaluate_bundle(bundle, data_root, out_dir, cfg, threads)


def _evaluate_bundle(bundle: Bundle, data_root: Path, out_dir: Path, cfg: EvaluateConfig, threads: int) -> dict:
    from .. import evaluate

    spec = bundle.spec
    scenes, refused = usable_scenes(load_scenes(existing_folder(data_root, "--data")), spec)
    for reason in refused:
        log.warning("not evaluated: %s", reason)
    if scenes.empty:
        raise GeofoundryError(f"{data_root}: no scene can be evaluated with this bundle (bands {spec.bands}, "
                              f"{spec.source_dtype}):\n  " + "\n  ".join(refused))
    predictions = out_dir / "scenes"
    for _, row in scenes.iterrows():
        predict_bundle(bundle, [Path(row["image_path"])], predictions, row["band_names"].split("|"), threads)
    selection = out_dir / "selection"
    selection.mkdir(parents=True, exist_ok=True)
    scenes.to_parquet(selection / "scenes.parquet", index=False)
    write_json(selection / "classes.json", {"names": spec.classes, "paths": spec.class_paths})
    report = evaluate.run(cfg, selection, predictions, predictions, out_dir / "evaluate.json", out_dir / "plots",
                          out_dir / "report.json")
    write_json(out_dir / "scenes.json", {"evaluated": scenes["scene_id"].tolist(), "not_evaluated": refused,
                                         "bundle_sha256": bundle.digest})
    log.info("evaluated %d scene(s); %s", len(scenes), json.dumps({"object.f1": report["object"]["f1"],
                                                                   "pixel.iou": report["pixel"]["iou"]}))
    return report
