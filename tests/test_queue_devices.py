"""The experiment queue with one device per worker, as docs/ARCHIVES.md shows it: each `dvc queue start` call adds
a worker with its own CUDA_VISIBLE_DEVICES; two queued experiments on tiny params (up to evaluate: the stages after
it add nothing the queue treats differently) both finish and `dvc exp show` lists them."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .project import env, make_project, sh

pytestmark = pytest.mark.slow


def start_worker(repo, jobs: int, device: str) -> None:
    """`CUDA_VISIBLE_DEVICES=<device> dvc queue start -j <jobs>`, its output in a file (a pipe blocks it)."""
    with open(repo / f"queue-{device}.log", "w") as log:
        subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=repo, stdout=log, stderr=subprocess.STDOUT,
                       env={**env(), "CUDA_VISIBLE_DEVICES": device}, check=True, timeout=120)


def test_two_workers_pinned_to_devices_finish_both_experiments(tmp_path, small_raw):
    repo = make_project(tmp_path / "repo", small_raw)
    sh("dvc", "add", "-q", "data/raw", cwd=repo)
    sh("git", "add", "data/raw.dvc", "data/.gitignore", cwd=repo)
    sh("git", "commit", "-qm", "data/raw in DVC", cwd=repo)
    for lr in ("0.001", "0.002"):
        sh("dvc", "exp", "run", "--queue", "-n", f"lr-{lr}", "-S", f"train.lr={lr}", "evaluate", cwd=repo)
    try:
        start_worker(repo, 1, "0")
        deadline = time.monotonic() + 120
        while "Worker status: 0 active, 0 idle" in sh("dvc", "queue", "status", cwd=repo).stdout:
            assert time.monotonic() < deadline, "the first worker never registered"
            time.sleep(2)
        start_worker(repo, 2, "1")
        assert "Started '1' new" in (repo / "queue-1.log").read_text()
        deadline = time.monotonic() + 3600
        while True:
            status = sh("dvc", "queue", "status", cwd=repo).stdout
            if not any(word in status for word in ("Queued", "Running")) or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        sh("dvc", "queue", "stop", "--kill", cwd=repo, check=False)
    assert status.count("Success") == 2, status
    table = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    runs = [run for row in table for e in (row.get("experiments") or []) for run in e["revs"]]
    assert {r["name"] for r in runs} >= {"lr-0.001", "lr-0.002"}
    for r in runs:
        metrics = r["data"]["metrics"]
        assert "object" in metrics["metrics/evaluate.json"]["data"]
