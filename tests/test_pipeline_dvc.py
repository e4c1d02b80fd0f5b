"""The whole pipeline through real DVC in a temporary git repo, on a small real subset of the DEV data."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from .project import make_project, sh

pytestmark = pytest.mark.slow
STAGES = ["select", "preprocess", "train", "predict", "postprocess", "evaluate", "export", "rps"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, small_raw):
    repo = make_project(tmp_path_factory.mktemp("pipeline") / "repo", small_raw)
    out = sh("dvc", "repro", cwd=repo)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out.stdout, out.stdout
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline run", cwd=repo)
    return repo


def test_repro_writes_every_output_and_metrics(project):
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    for section, key in [("object", "f1"), ("object", "precision"), ("object", "recall"), ("pixel", "iou"),
                         ("pixel", "f1")]:
        assert 0.0 <= metrics[section][key] <= 1.0
    export = json.loads((project / "metrics/export.json").read_text())
    assert export["onnx"]["passed"] and export["onnx"]["max_abs_diff"] < 1e-3
    assert (project / "export/model.onnx").stat().st_size > 0
    for split in ("val", "test"):
        assert sorted(p.stem for p in (project / "data/predictions" / split).glob("*.tif")), split
    rps = json.loads((project / "reports/rps.json").read_text())
    assert rps["trials"] == 3 and (project / "plots/rps/trials.csv").is_file()
    assert set(json.loads((project / "metrics/rps.json").read_text())) == {"best", "params"}
    assert "are up to date" in sh("dvc", "status", cwd=project).stdout


def restore(project) -> None:
    sh("git", "checkout", "params.yaml", "dvc.lock", "metrics", "reports", "plots", cwd=project)
    sh("dvc", "checkout", "-q", cwd=project)


def test_postprocess_param_reruns_no_training_or_prediction(project):
    """postprocess and evaluate re-run; export re-packs the bundle (it carries the chain and the metrics); the
    running point search, whose base is the chain, re-runs too."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["postprocess"]["steps"][-1] = {"min_area": {"area_m2": 15.0}}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh("dvc", "repro", cwd=project).stdout
    ran = [s for s in STAGES if f"Running stage '{s}'" in out]
    assert ran == ["postprocess", "evaluate", "export", "rps"], out
    restore(project)


def test_rps_apply_then_repro_reports_test_once_at_the_chosen_point(project):
    """A current point that keeps nothing (min_area 10000 m²) is beaten by the search; `geofoundry rps --apply`
    writes the best point into params.yaml, and `dvc repro` re-runs only what depends on it: the search reads
    every trial it computed before, and evaluate reports the test figure at that point."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["postprocess"]["steps"][-1] = {"min_area": {"area_m2": 10000.0}}
    params["evaluate"]["iou_threshold"] = 0.1  # a briefly trained model: loose matching, so some points score
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", cwd=project)
    before = json.loads((project / "reports/rps.json").read_text())
    assert before["params"]["val"]["tp"] == 0 and before["best"]["val"]["f1"] > 0, before
    text = (project / "params.yaml").read_text()
    applied = sh(sys.executable, "-m", "geofoundry", "rps", "--apply", cwd=project).stdout
    assert "dvc exp run -S postprocess.steps.5.min_area.area_m2=" in applied
    changed = [(a, b) for a, b in zip(text.splitlines(), (project / "params.yaml").read_text().splitlines()) if a != b]
    assert len(changed) == 1 and changed[0][0].strip() == "area_m2: 10000.0", changed
    out = sh("dvc", "repro", cwd=project).stdout  # postprocess may come back from DVC's run cache: no new point
    redone = [s for s in STAGES if f"Running stage '{s}'" in out or f"Stage '{s}' is cached" in out]
    assert redone == ["postprocess", "evaluate", "export", "rps"], out
    after = json.loads((project / "reports/rps.json").read_text())
    assert after["work"]["trials_reused"] == after["trials"] + 1 and after["best"] == after["params"]
    assert after["params"]["val"] == before["best"]["val"]
    test = json.loads((project / "reports/evaluate.json").read_text())
    assert test["object"]["tp"] + test["object"]["fn"] > 0
    assert "are up to date" in sh("dvc", "status", cwd=project).stdout
    restore(project)


@pytest.mark.parametrize(("stage", "added", "copied", "untouched"), [
    ("predict", "ensemble/member.pt", "models/best.pt", "train"),  # predict.ensemble's members
    ("select", "splits/earlier.parquet", "data/selection/blocks.parquet", "train"),  # select.split.pinned's files
    ("train", "init/release.pt", "models/best.pt", "preprocess"),  # what train.init_from may start from
])
def test_a_file_in_a_stage_folder_is_a_dependency(project, stage, added, copied, untouched):
    """A file put in ensemble/ (splits/, init/) changes the predict (select, train) stage's dependencies; an
    independent stage is untouched."""
    path = project / added
    path.write_bytes((project / copied).read_bytes())
    try:
        status = sh("dvc", "status", stage, cwd=project).stdout
        assert "modified:" in status and added.split("/")[0] in status, status
        assert untouched not in sh("dvc", "status", untouched, cwd=project).stdout
    finally:
        path.unlink()
    assert "up to date" in sh("dvc", "status", stage, cwd=project).stdout


def test_experiment_with_another_arch_is_compared(project):
    sh("dvc", "exp", "run", "-n", "deeplab-exp", "-S", "arch=deeplab", cwd=project)
    table = json.loads(sh("dvc", "exp", "show", "--json", cwd=project).stdout)
    exps = [e for rev in table for e in (rev.get("experiments") or [])]
    names = [(run.get("name"), run["data"]["params"]["params.yaml"]["data"]["arch"])
             for e in exps for run in e["revs"]]
    assert ("deeplab-exp", "deeplab") in names
    baseline = next(row for row in table if row["rev"] != "workspace")["data"]  # the committed baseline
    assert baseline["params"]["params.yaml"]["data"]["arch"] == "unet"
    assert "object" in baseline["metrics"]["metrics/evaluate.json"]["data"]
    diff = sh("dvc", "metrics", "diff", "--md", "--all", "HEAD", "deeplab-exp", cwd=project).stdout
    assert "object.f1" in diff and "pixel.iou" in diff


def test_exp_show_fits_a_terminal(project, monkeypatch):
    """With two experiments, `dvc exp show` without flags (a table that `less -S` shows from its left edge) has the
    evaluation headline of every row in its first 200 columns; `--only-changed --no-pager` fits 200 columns whole."""
    sh("dvc", "exp", "run", "-n", "iou06", "-S", "evaluate.iou_threshold=0.6", cwd=project)  # evaluate + export
    headline = json.loads((project / "metrics/evaluate.json").read_text())
    names = [f"{section}.{key}" for section, keys in headline.items() for key in keys]
    assert names[:6] == ["object.precision", "object.recall", "object.f1", "object.ap", "pixel.iou", "pixel.f1"]
    assert len(names) == 8 and names[6:] == ["site_f1.kampala_ug", "site_f1.nairobi_ke"]

    lines = sh("dvc", "exp", "show", cwd=project).stdout.splitlines()  # not a terminal: printed, not paged
    header = next(ln for ln in lines if "Experiment" in ln)
    assert all(name in header[:200] for name in names), header[:200]
    rows = [ln for ln in lines if "workspace" in ln or re.search(r"\[[\w-]+\]", ln)]  # iou06, deeplab-exp
    assert len(rows) >= 2 and any("[iou06]" in row for row in rows)
    for row in rows:  # every headline value of the row (0.xxxxx, or 0/1 exactly) within 200 columns
        assert len(re.findall(r"\b(?:\d+\.\d+(?:e-\d+)?|[01])\b", row[:200])) >= len(names), row[:200]

    monkeypatch.setenv("COLUMNS", "200")
    table = sh("dvc", "exp", "show", "--no-pager", "--only-changed", cwd=project).stdout
    assert max(map(len, table.splitlines())) <= 200
    assert "object.f1" in table and "pixel.iou" in table and "[iou06]" in table
