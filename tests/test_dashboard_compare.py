"""The compare page's server over HTTP on 127.0.0.1: the experiments table is what `dvc exp show` lists, the metric
difference is `dvc metrics diff`'s, each experiment's detections count what its reports/evaluate.json counts, a
clone reads other revisions' outputs from the DVC remote (and says so when they are nowhere), and promotion
refuses what it must. The slow tests share one DVC repository with two tiny real experiments (tests/compare_repo.py).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from geofoundry.dashboard.detections import detections
from geofoundry.dashboard.experiments import RevisionCache
from geofoundry.dashboard.revisions import Missing, RevisionFiles, Scratch

from .compare_repo import at, commit_with, with_param
from .dashboard_server import call, page_token, project, serve_project
from .project import sh

OUTCOMES = ("tp", "fp", "fn")


def token(url: str) -> str:
    return page_token(url, "/compare")


def promote(url: str, body: dict, run: bool = False, headers: dict | None = None) -> tuple[int, dict]:
    path = "/api/compare/promote" if run else "/api/compare/promote/check"
    status, out, _ = call(url + path, body, {"content-type": "application/json",
                                             **({"x-geofoundry-token": token(url)} if headers is None else headers)})
    return status, out


def rows(url: str) -> dict[str, dict]:
    status, body, _ = call(f"{url}/api/compare/experiments")
    assert status == 200, body
    return {r["name"]: r for r in body["rows"]}


def test_page_outside_a_dvc_repository(tmp_path, small_raw):
    """A project that is not a DVC repository: the page loads, the table says why it is empty, and a promotion
    without the page's token, or from another origin, is refused before anything is read."""
    server = serve_project(project(tmp_path / "proj", small_raw))
    try:
        status, html, _ = call(f"{server.url}/compare")
        assert status == 200 and b'href="/compare" aria-current="page"' in html and b"{{token}}" not in html
        status, body, _ = call(f"{server.url}/api/compare/experiments")
        assert status == 409 and "not a DVC repository" in body["error"]
        body = {"rev": "workspace", "version": "v1.0.0"}
        assert promote(server.url, body, True, {"content-type": "application/json"})[0] == 403
        assert promote(server.url, body, True, {"x-geofoundry-token": "guess"})[0] == 403
        foreign = {"x-geofoundry-token": token(server.url), "origin": "http://evil.example"}
        status, out = promote(server.url, body, True, foreign)
        assert status == 403 and "origin" in out["error"]
        assert promote(server.url, body, True)[0] == 409  # past the guards: no table to find the revision in
    finally:
        server.stop()


def test_revision_cache_keeps_what_dvc_would_not(tmp_path):
    """A commit's data with a read error (a metrics file it lacks) is kept, and read back the same."""
    from dvc.repo.experiments.serialize import SerializableExp

    exp = SerializableExp(rev="a" * 40, params={"params.yaml": {"data": {"evaluate": {"iou_threshold": 0.5}}}},
                          metrics={"metrics/evaluate.json": {"data": {"object": {"f1": 0.25}}},
                                   "metrics/predict.json": {"error": FileNotFoundError(2, "No such file")}})
    RevisionCache(tmp_path).put(exp)
    back = RevisionCache(tmp_path).get("a" * 40)
    assert back.params == exp.params and back.metrics["metrics/evaluate.json"] == exp.metrics["metrics/evaluate.json"]
    assert back.contains_error and back.metrics["metrics/predict.json"]["error"]["type"] == "FileNotFoundError"


@pytest.fixture(scope="module")
def served(compare_repo):
    server = serve_project(compare_repo["repo"], warm=True)
    yield server
    server.stop()


@pytest.mark.slow
def test_table_is_dvc_exp_show(served, compare_repo):
    repo, revs = compare_repo["repo"], compare_repo["revs"]
    table = rows(served.url)
    assert {"workspace", "main", "iou03", "thr04"} <= set(table)
    assert table["main"]["kind"] == "branch" and table["main"]["id"] == revs["main"]
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    for base in shown:
        for exp in base.get("experiments") or []:
            run, row = exp["revs"][0], table[exp["name"]]
            assert row["id"] == run["rev"] and row["kind"] == "experiment" and row["baseline"] == "main"
            metrics = run["data"]["metrics"]["metrics/evaluate.json"]["data"]
            assert row["metrics"]["metrics/evaluate.json:object.f1"] == metrics["object"]["f1"]
            assert row["metrics"]["metrics/evaluate.json:pixel.iou"] == metrics["pixel"]["iou"]
            params = run["data"]["params"]["params.yaml"]["data"]
            assert row["params"]["params.yaml:evaluate.iou_threshold"] == params["evaluate"]["iou_threshold"]
    assert table["iou03"]["params"]["params.yaml:evaluate.iou_threshold"] == 0.3


@pytest.mark.slow
def test_metrics_diff_is_dvc_metrics_diff(served, compare_repo):
    repo, revs = compare_repo["repo"], compare_repo["revs"]
    status, body, _ = call(f"{served.url}/api/compare/diff?a={revs['main']}&b={revs['thr04']}")
    assert status == 200
    want = json.loads(sh("dvc", "metrics", "diff", "--json", "--all", "main", "thr04", cwd=repo).stdout)
    assert body["diff"] == want
    assert call(f"{served.url}/api/compare/diff?a=HEAD&b={revs['main']}")[0] == 404  # rows only, no git revisions


@pytest.mark.slow
def test_detections_count_what_evaluate_reported(served, compare_repo):
    repo, revs = compare_repo["repo"], compare_repo["revs"]
    sides = {}
    for name in ("main", "iou03", "thr04", "workspace"):
        rev = revs.get(name, "workspace")
        status, side, _ = call(f"{served.url}/api/compare/side/{rev}")
        assert status == 200 and "error" not in side, side
        report = json.loads((repo / "reports/evaluate.json").read_text()) if rev == "workspace" \
            else at(repo, rev, "reports/evaluate.json")
        counts = side["detections"]["counts"]
        assert counts == {o: report["object"][o] for o in OUTCOMES} == side["detections"]["report"], name
        found = {o: sum(f["properties"]["outcome"] == o for f in side["detections"]["features"]) for o in OUTCOMES}
        assert found == counts
        assert side["plots"]["object_pr"] == (at(repo, rev, "plots/evaluate/object_pr.json") if rev != "workspace"
                                              else json.loads((repo / "plots/evaluate/object_pr.json").read_text()))
        sides[name] = counts
    # iou03 matches the same detections as main at a lower IoU; thr04 detects others
    assert sides["iou03"]["tp"] + sides["iou03"]["fp"] == sides["main"]["tp"] + sides["main"]["fp"]
    assert sides["iou03"]["tp"] >= sides["main"]["tp"]
    assert sides["workspace"] == sides["thr04"]  # `dvc exp run` left thr04's results in the workspace


@pytest.mark.slow
def test_promote_refuses_then_registers(served, compare_repo):
    repo, revs = compare_repo["repo"], compare_repo["revs"]
    status, out = promote(served.url, {"rev": "workspace", "version": "v0.9.0"})
    assert status == 200 and "not a commit" in out["problems"][0]
    status, out = promote(served.url, {"rev": revs["iou03"], "version": "0.9"})
    assert "not a semantic version" in out["problems"][0] and len(out["problems"]) == 1

    lock = sh("git", "show", "main:dvc.lock", cwd=repo).stdout
    bundle_md5 = re.search(r"path: export/bundle\n\s+hash: md5\n\s+md5: (\w+)\.dir", lock).group(1)
    stale = commit_with(repo, revs["main"], "stale", {
        "params.yaml": with_param(repo, revs["main"], "evaluate", "min_area_m2", 5.0)})
    nobundle = commit_with(repo, revs["main"], "nobundle", {
        "dvc.lock": lock.replace(bundle_md5, "0" * 32)})
    try:
        table = rows(served.url)
        assert table["stale"]["id"] == stale and table["nobundle"]["id"] == nobundle
        status, out = promote(served.url, {"rev": stale, "version": "v0.9.0"})
        assert len(out["problems"]) == 1 and "dvc status of stale" in out["problems"][0], out
        assert "evaluate: params.yaml evaluate modified" in out["problems"][0]
        status, out = promote(served.url, {"rev": nobundle, "version": "v0.9.0"})
        assert len(out["problems"]) == 1 and "in neither the DVC cache nor the remote" in out["problems"][0], out
        assert promote(served.url, {"rev": nobundle, "version": "v0.9.0"}, run=True)[0] == 409
    finally:
        sh("git", "branch", "-D", "stale", "nobundle", cwd=repo)
    assert "detector@v0.9.0" not in sh("git", "tag", "-l", cwd=repo).stdout

    status, out = promote(served.url, {"rev": revs["iou03"], "version": "v0.9.0"})
    assert status == 200 and out["problems"] == [] and out["tag"] == "detector@v0.9.0"
    assert out["commands"][0].startswith(f"gto register detector {revs['iou03']} --version v0.9.0")
    status, out = promote(served.url, {"rev": revs["iou03"], "version": "v0.9.0"}, run=True)
    assert status == 200 and out["registered"] == "detector@v0.9.0", out
    assert sh("git", "rev-list", "-n", "1", "detector@v0.9.0", cwd=repo).stdout.strip() == revs["iou03"]
    assert "detector@v0.9.0" in rows(served.url)["iou03"]["tags"]
    status, out = promote(served.url, {"rev": revs["thr04"], "version": "v0.9.0"})
    assert ("version v0.9.0 of detector exists already (tag detector@v0.9.0 on "  # thr04 may hold a version too
            f"{revs['iou03'][:7]})") in out["problems"]
    status, out = promote(served.url, {"rev": revs["iou03"], "version": "v0.9.1"})
    assert out["problems"] == [f"iou03 ({revs['iou03'][:7]}) is already version v0.9.0 of detector"]


@pytest.mark.slow
def test_a_clone_reads_other_revisions_from_the_remote(compare_repo, tmp_path):
    """A clone (no DVC cache, no outputs) shows main's detections from the DVC remote; its workspace, and main once
    the remote is an empty one, are refused with the reason."""
    repo, revs = compare_repo["repo"], compare_repo["revs"]
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    shutil.copytree(repo / "data" / "raw", clone / "data" / "raw")  # not versioned in this repository
    scratch = Scratch()
    try:
        got = detections(RevisionFiles(clone, revs["main"], "main", scratch.path))
        report = at(repo, revs["main"], "reports/evaluate.json")
        assert got["counts"] == {o: report["object"][o] for o in OUTCOMES}
        missing = r"data/predictions/test: not in the workspace; `dvc pull data/predictions/test`"
        with pytest.raises(Missing, match=missing):
            detections(RevisionFiles(clone, "workspace", "workspace", scratch.path))
    finally:
        scratch.close()
    shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
    sh("dvc", "remote", "modify", "--local", "store", "url", str(tmp_path / "empty"), cwd=clone)
    scratch = Scratch()
    try:
        with pytest.raises(Missing, match=r"of main \(\w{7}\): in neither the DVC cache nor the remote"):
            detections(RevisionFiles(clone, revs["main"], "main", scratch.path))
    finally:
        scratch.close()
    assert Path(scratch.path).exists() is False
