"""Running point search on synthetic validation maps whose best point is known by construction, the errors of
``rps:`` settings, the work shared between trials, and ``geofoundry rps --apply`` (params.yaml round trip).

The map (EPSG:32636, 0.5 m, all valid) holds, on p = 0.1: three 8 × 8 m and three 4 × 5 m buildings at p = 0.6
(the truth, exactly), four 2 × 2 m specks at p = 0.9 and three 6 × 6 m blobs at p = 0.4. With the chain threshold →
polygonize → min_area, thresholds [0.3, 0.5, 0.7] and minimum areas [0, 10, 30] m², only (0.5, 10) finds every
building and nothing else: 0.3 lets the blobs in, 0.7 loses the buildings, 0 keeps the specks, 30 drops the small
buildings.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import yaml
from typer.testing import CliRunner

from geofoundry.errors import GeofoundryError
from geofoundry.pipeline.cli import app
from geofoundry.pipeline.params import load_params
from geofoundry.pipeline.runner import run_stage
from geofoundry.postprocess import OPS
from geofoundry.rps.apply import apply_best, exp_run_line

from .test_postprocess import write_prob_tif

ROOT = Path(__file__).resolve().parents[1]
CRS, PX, ORIGIN = "EPSG:32636", 0.5, (500_000.0, 9_970_000.0)
SIDE = 240  # px
# (row, col, height, width) in px, probability
BIG = [((20, 20, 16, 16), 0.6), ((20, 100, 16, 16), 0.6), ((20, 180, 16, 16), 0.6)]
SMALL = [((90, 20, 8, 10), 0.6), ((90, 100, 8, 10), 0.6), ((90, 180, 8, 10), 0.6)]
SPECKS = [((150, 30, 4, 4), 0.9), ((150, 90, 4, 4), 0.9), ((150, 150, 4, 4), 0.9), ((150, 210, 4, 4), 0.9)]
BLOBS = [((190, 20, 12, 12), 0.4), ((190, 100, 12, 12), 0.4), ((190, 180, 12, 12), 0.4)]
THRESHOLDS, AREAS = [0.3, 0.5, 0.7], [0, 10, 30]
STEPS = [{"threshold": {"value": 0.3}}, {"polygonize": {}}, {"min_area": {"area_m2": 0}}]  # 0: an int for a float
SETTINGS = {"postprocess.threshold.value": THRESHOLDS, "postprocess.min_area.area_m2": AREAS}


def expected(threshold: float, area: float) -> tuple[int, int, int]:
    """(tp, fp, fn) of a point, by construction."""
    tp = (3 if threshold <= 0.6 else 0) + (3 if threshold <= 0.6 and area <= 20 else 0)
    fp = (4 if area <= 4 else 0) + (3 if threshold <= 0.4 else 0)
    return tp, fp, 6 - tp


def box(rows: int, cols: int, height: int, width: int) -> shapely.Polygon:
    x0, y0 = ORIGIN[0] + cols * PX, ORIGIN[1] - rows * PX
    return shapely.box(x0, y0 - height * PX, x0 + width * PX, y0)


def write_params(root: Path, rps: dict, steps: list[dict] = STEPS) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["postprocess"]["steps"] = steps
    params["rps"] = {**params["rps"], "settings": SETTINGS, **rps}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root / "params.yaml"


@pytest.fixture()
def known(tmp_path) -> Path:
    """A project with the selection and the validation map described in the module docstring."""
    prob = np.full((1, SIDE, SIDE), 0.1, np.float32)
    for (r, c, h, w), p in BIG + SMALL + SPECKS + BLOBS:
        prob[0, r:r + h, c:c + w] = p
    transform = rasterio.transform.from_origin(*ORIGIN, PX, PX)
    (tmp_path / "data/predictions/val").mkdir(parents=True)
    write_prob_tif(tmp_path / "data/predictions/val/synthetic.tif", prob, np.ones((SIDE, SIDE), bool), transform, CRS)
    buildings = [box(*b) for b, _ in BIG + SMALL]
    truth = gpd.GeoDataFrame({"class": ["building"] * 6, "class_path": ["structure/building"] * 6},
                             geometry=buildings, crs=CRS).to_crs("EPSG:4326")
    (tmp_path / "labels.geojson").write_text(truth.to_json())
    selection = tmp_path / "data/selection"
    selection.mkdir()
    pd.DataFrame({"scene_id": ["synthetic"], "site": ["synth"], "splits": ["val"],
                  "labels_path": [str(tmp_path / "labels.geojson")]}).to_parquet(selection / "scenes.parquet")
    (selection / "classes.json").write_text(json.dumps({"names": ["background", "building"],
                                                        "paths": [None, "structure/building"]}))
    return tmp_path


@pytest.mark.parametrize("search", ["grid", "random", "tpe"])
def test_known_answer_sweep(known, search):
    params = write_params(known, {"search": search, "trials": 9})
    summary = run_stage("rps", params.name, known)
    best = summary["best"]
    assert best["settings"] == {"postprocess.threshold.value": 0.5, "postprocess.min_area.area_m2": 10}
    assert best["val"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "ap": 1.0, "tp": 6, "fp": 0, "fn": 0}
    assert best["set"] == ["postprocess.steps.0.threshold.value=0.5", "postprocess.steps.2.min_area.area_m2=10.0"]
    trials = pd.read_csv(known / "plots/rps/trials.csv")
    assert trials["source"].tolist() == ["params"] + ["search"] * 8  # the params' point (0.3, 0) is trial 0
    for row in trials.itertuples():
        got = (row.tp, row.fp, row.fn)
        assert got == expected(row[3], row[4]), (row, got)
    assert sorted(zip(trials.iloc[1:, 2], trials.iloc[1:, 3])) == sorted(
        (t, a) for t in THRESHOLDS for a in AREAS if (t, a) != (0.3, 0))  # every other point once
    report = json.loads((known / "reports/rps.json").read_text())
    assert report["params"]["val"]["f1"] == pytest.approx(12 / 19, abs=1e-6) and report["trials"] == 8
    assert json.loads((known / "metrics/rps.json").read_text()) == {
        "best": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "ap": 1.0, "settings": best["settings"]},
        "params": {"f1": report["params"]["val"]["f1"]}}
    front = pd.read_csv(known / "plots/rps/pareto.csv")
    assert front["trial"].tolist() == [best["trial"]]  # (1, 1) beats every other point
    by_setting = json.loads((known / "plots/rps/f1_by_setting/postprocess.threshold.value.json").read_text())
    assert len(by_setting) == 9 and {r["value"] for r in by_setting} == set(THRESHOLDS)


def test_a_labelled_area_bounds_the_validation_area(known):
    """Ground outside the scene's labelled area is unlabelled, not negative: the specks and blobs below it are
    neither false positives nor kept from an earlier run without the area."""
    params = write_params(known, {"trials": 9})
    run_stage("rps", params.name, known)
    top = shapely.box(ORIGIN[0], ORIGIN[1] - 120 * PX, ORIGIN[0] + SIDE * PX, ORIGIN[1])  # the buildings' rows
    area = gpd.GeoSeries([top], crs=CRS).to_crs("EPSG:4326")
    (known / "area.geojson").write_text(area.to_json())
    scenes = pd.read_parquet(known / "data/selection/scenes.parquet")
    scenes["labelled_area_path"] = str(known / "area.geojson")
    scenes.to_parquet(known / "data/selection/scenes.parquet")
    summary = run_stage("rps", params.name, known)
    assert summary["work"]["trials_reused"] == 0
    assert summary["params"]["val"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "ap": 1.0, "tp": 6, "fp": 0,
                                        "fn": 0}
    trials = pd.read_csv(known / "plots/rps/trials.csv")
    assert (trials["fp"] == 0).all() and summary["best"]["trial"] == 0  # ties go to the current params


def test_shared_work_is_done_once_and_trials_are_kept(known, monkeypatch):
    """Three thresholds: three threshold and polygonize runs for the nine points; each point's min_area once. A
    second run reads every trial from .rps-cache."""
    calls = {name: 0 for name in ("threshold", "polygonize", "min_area")}

    def counting(name):
        func = OPS[name].func

        def op(state, **kwargs):
            calls[name] += 1
            return func(state, **kwargs)
        return op

    for name in calls:
        monkeypatch.setitem(OPS, name, replace(OPS[name], func=counting(name)))
    params = write_params(known, {"trials": 9})
    run_stage("rps", params.name, known)
    assert calls == {"threshold": 3, "polygonize": 3, "min_area": 9}
    calls.update(dict.fromkeys(calls, 0))
    summary = run_stage("rps", params.name, known)
    assert calls == dict.fromkeys(calls, 0) and summary["work"]["trials_reused"] == 9
    assert pd.read_csv(known / "plots/rps/trials.csv")["cached"].tolist() == [1] * 9


def test_a_tight_memory_budget_changes_the_work_not_the_figures(known):
    params = write_params(known, {"trials": 9})
    wide = run_stage("rps", params.name, known)
    table = pd.read_csv(known / "plots/rps/trials.csv").drop(columns="seconds")
    shutil.rmtree(known / ".rps-cache")
    write_params(known, {"trials": 9, "memory_gb": 1e-9})  # nothing kept between trials
    tight = run_stage("rps", params.name, known)
    assert tight["work"]["memo_hits"] == 0 < wide["work"]["memo_hits"]
    assert pd.read_csv(known / "plots/rps/trials.csv").drop(columns="seconds").equals(table)
    assert tight["best"] == wide["best"]


@pytest.mark.parametrize(("rps", "message"), [
    ({"settings": {"postprocess.thresold.value": [0.5]}},
     "rps.settings.postprocess.thresold.value: postprocess.steps has no 'thresold' step (its steps: threshold, "
     "polygonize, min_area)"),
    ({"settings": {"postprocess.steps.1.threshold.value": [0.5]}},
     "rps.settings.postprocess.steps.1.threshold.value: postprocess.steps.1 is 'polygonize', not 'threshold'"),
    ({"settings": {"postprocess.min_area.area_m2": {"low": 20, "high": 10}}},
     "rps.settings.postprocess.min_area.area_m2: empty range: low 20 > high 10"),
    ({"settings": {"postprocess.min_area.area_m2": []}}, "rps.settings.postprocess.min_area.area_m2: empty list"),
    ({"settings": {"postprocess.min_area.area_m2": {"low": 0, "high": 1e9, "step": 1e-9}}},
     "rps.settings.postprocess.min_area.area_m2: the range has more than 10000 values: take a larger step"),
    ({"settings": {"predict.tile": [256]}}, "rps.settings.predict.tile: not a predict setting RPS varies"),
    ({"settings": {"predict.tta": ["none", "d8"]}}, "rps.settings.predict.tta: 'd8': Input should be"),
    ({"settings": {"train.lr": [0.1]}}, "rps.settings.train.lr: not a setting RPS varies"),
    ({"trials": 0}, "rps.trials: Input should be greater than or equal to 1"),
    ({"trials": 8}, "rps.trials: the grid has 9 points but the budget is 8"),
    ({"search": "bayes"}, "rps.search: Input should be 'grid', 'random' or 'tpe'"),
    ({"objective": "f2"}, "rps.objective: Input should be 'f1', 'recall_at_precision' or 'precision_at_recall'"),
    ({"settings": {"postprocess.threshold.value": {"low": 0.3, "high": 0.7}}},
     "rps.settings.postprocess.threshold.value: search grid needs a list or a range with a step"),
])
def test_bad_settings_are_refused_when_params_load(tmp_path, rps, message):
    """Every stage refuses them (the params loader), and so does `geofoundry rps`."""
    params = write_params(tmp_path, rps)
    with pytest.raises(GeofoundryError) as err:
        load_params(params)
    assert message in str(err.value)
    result = CliRunner().invoke(app, ["rps", "-p", str(params)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("settings", "message"), [
    ({"postprocess.threshold.val": [0.5]},
     "rps.settings.postprocess.threshold.val: 'threshold' has no parameter 'val' (its parameters: value)"),
    ({"postprocess.threshold.value": [0.5, 1.5]},
     "rps.settings.postprocess.threshold.value: 1.5: Input should be less than or equal to 1"),
])
def test_operation_parameters_are_refused_before_any_trial(known, settings, message, monkeypatch):
    """A postprocess parameter's name and values are the operation's: the rps stage checks them before it reads
    a map (the params loader of every stage does not import the postprocess code)."""
    monkeypatch.chdir(known)
    params = write_params(known, {"settings": settings})
    load_params(params)
    result = CliRunner().invoke(app, ["rps", "-p", str(params)])
    assert result.exit_code == 1 and "error (rps): invalid rps parameters" in result.output
    assert message in result.output and not (known / "metrics").exists()


def test_empty_settings_or_no_maps_fail_the_stage_only(known, monkeypatch):
    monkeypatch.chdir(known)  # the stage's outputs are under the working directory, as with `dvc repro`
    params = write_params(known, {"settings": {}})
    load_params(params)  # other stages load these params
    result = CliRunner().invoke(app, ["rps", "-p", str(params)])
    assert result.exit_code == 1 and "error (rps): rps.settings is empty" in result.output
    params = write_params(known, {})
    for tif in (known / "data/predictions/val").glob("*.tif"):
        tif.unlink()
    result = CliRunner().invoke(app, ["rps", "-p", str(params)])
    assert result.exit_code == 1 and "data/predictions/val: no validation maps" in result.output
    assert "dvc repro predict" in result.output


def test_apply_changes_only_the_chosen_values(tmp_path):
    """params.yaml keeps every byte but the values set (a parameter left out of a step is added in its flow map),
    and the printed `dvc exp run -S` line sets the same params."""
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    original = params.read_text()
    (tmp_path / "reports").mkdir()
    best = {"postprocess.threshold.value": 0.45, "postprocess.simplify.preserve_topology": False,
            "postprocess.min_area.area_m2": 10.0, "predict.tta": "d4"}
    overrides = ["postprocess.steps.0.threshold.value=0.45", "postprocess.steps.4.simplify.preserve_topology=false",
                 "postprocess.steps.5.min_area.area_m2=10.0", "predict.tta=d4"]
    (tmp_path / "reports/rps.json").write_text(json.dumps({"best": {"settings": best, "set": overrides}}))
    result = CliRunner().invoke(app, ["rps", "--apply", "-p", str(params)])
    assert result.exit_code == 0, result.output
    changed = [o if "simplify" not in o else "+" + o for o in overrides if "min_area" not in o]  # 10.0 is there
    assert result.output.strip().endswith(exp_run_line(changed))
    new = params.read_text()
    diff = [(a, b) for a, b in zip(original.splitlines(), new.splitlines()) if a != b]
    assert len(original.splitlines()) == len(new.splitlines()) and len(diff) == 3
    assert diff[0][1].startswith("  tta: d4      ") and "# test-time augmentation" in diff[0][1]
    assert diff[1] == ("    - threshold: {value: 0.5}", "    - threshold: {value: 0.45}")
    assert diff[2] == ("    - simplify: {tolerance_m: 0.3}",
                       "    - simplify: {tolerance_m: 0.3, preserve_topology: false}")
    applied = load_params(params)
    assert applied.predict.tta == "d4" and applied.postprocess.steps[0] == {"threshold": {"value": 0.45}}

    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` does to params.yaml
    by_dvc = tmp_path / "dvc" / "params.yaml"
    by_dvc.parent.mkdir()
    by_dvc.write_text(original)
    apply_overrides(by_dvc, changed)
    assert load_params(by_dvc) == applied

    assert CliRunner().invoke(app, ["rps", "--apply", "-p", str(params)]).output.strip().endswith(
        "already holds the best point of the search")
    assert params.read_text() == new


def test_apply_refuses_a_stale_search(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    before = params.read_text()
    (tmp_path / "reports").mkdir()
    result = CliRunner().invoke(app, ["rps", "--apply", "-p", str(params)])
    assert result.exit_code == 1 and "rps.json: missing; run the search first" in result.output
    stale = {"best": {"settings": {"postprocess.open.radius_px": 3}, "set": ["postprocess.steps.2.open.radius_px=3"]}}
    (tmp_path / "reports/rps.json").write_text(json.dumps(stale))  # step 2 is fill_holes now
    with pytest.raises(GeofoundryError, match="does not fit .*run it again"):
        apply_best(params, tmp_path / "reports/rps.json")
    bad = {"best": {"settings": {"predict.overlap": 400}, "set": ["predict.overlap=400"]}}
    (tmp_path / "reports/rps.json").write_text(json.dumps(bad))
    with pytest.raises(GeofoundryError, match="predict: Value error, overlap"):
        apply_best(params, tmp_path / "reports/rps.json")
    bad = {"best": {"settings": {"postprocess.threshold.value": 1.5},
                    "set": ["postprocess.steps.0.threshold.value=1.5"]}}
    (tmp_path / "reports/rps.json").write_text(json.dumps(bad))
    with pytest.raises(GeofoundryError, match=r"best point: postprocess.steps\[0\] 'threshold'.*less than or equal"):
        apply_best(params, tmp_path / "reports/rps.json")
    assert params.read_text() == before


def test_stepped_ranges_give_their_own_values_to_every_sampler(known):
    """Draws from a stepped range are the range's values (no float noise such as 0.30000000000000004), so the
    table, the best point and its `dvc exp run -S` line carry them as written."""
    settings = {"postprocess.threshold.value": {"low": 0.3, "high": 0.7, "step": 0.1},
                "postprocess.min_area.area_m2": {"low": 0, "high": 30, "step": 10}}
    for search in ("random", "tpe"):
        params = write_params(known, {"search": search, "trials": 12, "settings": settings, "seed": 3})
        summary = run_stage("rps", params.name, known)
        trials = pd.read_csv(known / "plots/rps/trials.csv")
        assert set(trials["postprocess.threshold.value"]) <= {0.3, 0.4, 0.5, 0.6, 0.7}
        assert set(trials["postprocess.min_area.area_m2"]) <= {0.0, 10.0, 20.0, 30.0}
        assert len(trials) == 13 and not trials.duplicated(["postprocess.threshold.value",
                                                             "postprocess.min_area.area_m2"]).any()
        assert all(len(s.partition("=")[2]) <= 4 for s in summary["best"]["set"]), summary["best"]["set"]


def test_pareto_front():
    from geofoundry.rps.outputs import pareto_front

    rows = [{"trial": i, "precision": p, "recall": r} for i, (p, r) in
            enumerate([(0.5, 0.5), (0.9, 0.2), (0.6, 0.5), (0.6, 0.5), (0.4, 0.8), (0.3, 0.7), (0.9, 0.1)])]
    assert [r["trial"] for r in pareto_front(rows)] == [1, 2, 4]  # by recall; ties: the earlier trial
