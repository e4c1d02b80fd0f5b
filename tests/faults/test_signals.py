"""Commands stopped half-way: SIGINT, SIGTERM and SIGHUP end them with their cleanups run, one ``error (<command>):
interrupted by …`` line and status 128 + n; SIGKILL leaves hidden temporary files that no stage reads as output and
that the next run into the same output removes.

A command is stopped at a moment it announces on disk (its first temporary file), so the signal lands while it
writes; those cases run stages on real DEV scenes and are slow. The fast ones plant what a killed run leaves.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import geopandas as gpd
import pytest

from ..project import env
from .conftest import assert_error, run_cli, run_stage, snapshot
from .processes import (SIGNAL_STATUS, assert_ok, cli_args, hidden, interrupt, kill_while, stage_args, start,
                        wait_for, writing)
from .rasters import DEV_SCENE, SCENE, cut


def interrupted(signum: int) -> str:
    return (f"interrupted by {signal.Signals(signum).name}; no output was left half-written (each is as it was, or "
            "finished): run it again")


COMMIT = """
import os, signal, time
from pathlib import Path
from geofoundry.io.signals import deferred, handle_signals
from geofoundry.pipeline.reporting import reported

handle_signals()
with reported("demo"):
    with deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        Path("committed").write_text("every rename of the commit happened")
    Path("after").write_text("never reached")
"""


def test_a_signal_during_a_commit_waits_for_it(tmp_path):
    """A signal that lands while outputs are renamed into place (or temporary files removed) waits for the end of
    that section, then ends the command with the error line and 128 + n."""
    proc = subprocess.run([sys.executable, "-c", COMMIT], cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert_error(proc, "demo", interrupted(signal.SIGTERM), 143)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["committed"]


POOLS = """
import time
from geofoundry.io.signals import ThreadPool, handle_signals
from geofoundry.pipeline.reporting import reported

handle_signals()
with reported("demo"):
    print("ready", flush=True)
    while True:  # every pool starts its worker threads anew
        with ThreadPool(max_workers=4) as pool:
            for _ in range(4):
                pool.submit(time.sleep, 0)
"""


def test_a_signal_while_worker_threads_start_leaves_no_traceback(tmp_path):
    """A signal that lands while a pool starts a worker thread waits until the thread is registered: Python's
    ``Thread.start`` interrupted by an exception leaves a thread that dies printing a traceback (about one run in
    twenty with a plain ``ThreadPoolExecutor``, so the case is run forty times, at staggered moments)."""
    for attempt in range(40):
        proc = subprocess.Popen([sys.executable, "-c", POOLS], cwd=tmp_path, env=env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.02 + (attempt % 7) * 0.013)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate()
        assert_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), "demo",
                     interrupted(signal.SIGTERM), 143)


@pytest.fixture(scope="module")
def small_map(tmp_path_factory, bundle):
    """A real probability map (``predict --bundle`` on a 512² cut of a DEV scene)."""
    site = tmp_path_factory.mktemp("map")
    scene = cut(site / f"{SCENE}.tif")
    assert_ok(run_cli("predict", "--bundle", str(bundle), str(scene), "--out", "out", cwd=site))
    return site / "out" / f"{SCENE}.tif"


def test_a_killed_predicts_temporary_maps_are_not_read_as_scenes(workspace, small_map):
    """kill -9 during predict leaves hidden temporary maps beside the finished ones (readable TIFFs: the COG's
    template and mask); postprocess reads only the maps (it once read `.….tmp.mask.tif` files as scenes)."""
    predictions = workspace / "data" / "predictions" / "test"  # what the postprocess stage reads
    predictions.mkdir()
    shutil.copy(small_map, predictions / f"{SCENE}.tif")
    for debris in (f".{SCENE}.k3x9q2za.tmp.tif", f".{SCENE}.k3x9q2za.tmp.mask.tif"):
        shutil.copy(small_map, predictions / debris)
    (workspace / "data" / "selection" / "classes.json").write_text('{"names": ["background", "building"]}')
    assert_ok(run_stage(workspace, "postprocess"))
    vectors = workspace / "data" / "vectors"
    assert sorted(p.name for p in vectors.iterdir()) == ["all.gpkg", "earlier-output.txt", f"{SCENE}.gpkg"]
    assert set(gpd.read_file(vectors / "all.gpkg")["scene_id"]) <= {SCENE}


def test_a_killed_bundle_runs_folder_is_removed_by_the_next_run(bundle, small_map, tmp_path):
    """kill -9 leaves ``predict --bundle``'s hidden temporary folder in --out (it once stayed for good); the next run
    into that folder removes it and says so."""
    out = tmp_path / "out"
    (out / ".predict.k3x9q2za.tmp" / "predictions").mkdir(parents=True)
    shutil.copy(small_map, out / ".predict.k3x9q2za.tmp" / "predictions" / "half.tif")
    scene = cut(tmp_path / "scene.tif")
    proc = run_cli("predict", "--bundle", str(bundle), str(scene), "--out", "out", cwd=tmp_path)
    assert_ok(proc)
    assert "out: removed 1 temporary file(s) left by an interrupted run: .predict.k3x9q2za.tmp" in proc.stderr
    assert hidden(tmp_path) == [] and sorted(p.name for p in out.iterdir()) == ["scene.gpkg", "scene.tif"]


# ---------------------------------------------------------------- signals that land while a stage writes


@pytest.fixture
def predicted(project, predicted_project):
    """A project with the outputs of a finished predict stage (the maps a later run must not spoil)."""
    for folder in ("data/predictions", "metrics"):
        shutil.copytree(predicted_project / folder, project / folder, dirs_exist_ok=True)
    return project


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_predict_stage_stopped_by_a_signal_cleans_up(predicted, signum):
    predictions = predicted / "data" / "predictions"
    before = snapshot(predictions)
    proc = start(stage_args("predict"), predicted)
    wait_for(writing(predictions / "val"), proc)  # the validation maps come first
    assert_error(interrupt(proc, signum), "predict", interrupted(signum), SIGNAL_STATUS[signum])
    assert hidden(predicted / "data") == [] and hidden(predicted) == []  # no temporary file, no lock
    assert snapshot(predictions).keys() == before.keys()  # every map whole: as it was, or finished by this run
    assert_ok(run_stage(predicted, "postprocess"))


@pytest.mark.slow
def test_predict_stage_killed_leaves_nothing_a_stage_reads(predicted):
    """kill -9 leaves hidden temporary maps; postprocess reads only the maps, the next predict run removes them."""
    predictions = predicted / "data" / "predictions"
    maps = sorted(p.name for p in (predictions / "test").iterdir())  # what postprocess reads
    proc = start(stage_args("predict"), predicted)
    kill_while(lambda: writing(predictions / "val")() or writing(predictions / "test")(), proc)
    assert hidden(predictions), "the killed run left its temporary files"
    assert_ok(run_stage(predicted, "postprocess"))
    assert sorted(p.name for p in (predicted / "data" / "vectors").iterdir()) == sorted(
        [m.replace(".tif", ".gpkg") for m in maps] + ["all.gpkg"])
    again = run_stage(predicted, "predict")
    assert_ok(again)
    assert "temporary file(s) left by an interrupted run" in again.stderr
    assert hidden(predicted / "data") == [] and sorted(p.name for p in (predictions / "test").iterdir()) == maps


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_predict_bundle_stopped_by_a_signal_cleans_up(signum, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.tif").write_bytes(b"an earlier run's map")
    before = snapshot(out)
    proc = start(cli_args("predict", "--bundle", bundle, DEV_SCENE, "--out", out), tmp_path)
    wait_for(writing(out), proc)
    assert_error(interrupt(proc, signum), "predict", interrupted(signum), SIGNAL_STATUS[signum])
    assert snapshot(out) == before and hidden(tmp_path) == []


@pytest.mark.slow
def test_predict_bundle_killed_leaves_a_folder_the_next_run_removes(bundle, tmp_path):
    out = tmp_path / "out"
    args = ("predict", "--bundle", bundle, DEV_SCENE, "--out", out)
    proc = start(cli_args(*args), tmp_path)
    kill_while(writing(out), proc)
    assert [p for p in hidden(out) if p.startswith(".predict.") and p.endswith(".tmp")]
    assert_ok(run_cli(*map(str, args), cwd=tmp_path))
    assert hidden(tmp_path) == [] and sorted(p.name for p in out.iterdir()) == [f"{SCENE}.gpkg", f"{SCENE}.tif"]


@pytest.mark.slow
def test_preprocess_stopped_by_sigterm_keeps_the_old_chips(project):
    data = project / "data"
    before = snapshot(data / "chips")
    proc = start(stage_args("preprocess"), project)
    wait_for(writing(data), proc)
    assert_error(interrupt(proc, signal.SIGTERM), "preprocess", interrupted(signal.SIGTERM), 143)
    assert snapshot(data / "chips") == before and hidden(data) == []


@pytest.mark.slow
def test_preprocess_killed_leaves_a_folder_the_next_run_removes(project):
    data = project / "data"
    before = snapshot(data / "chips")
    proc = start(stage_args("preprocess"), project)
    kill_while(writing(data), proc)
    assert snapshot(data / "chips") == before
    assert [p for p in hidden(data) if p.startswith(".chips.")], "the killed run's folder is there"
    assert_ok(run_stage(project, "preprocess"))
    assert hidden(data) == [] and (data / "chips" / "train" / "images.npy").is_file()
