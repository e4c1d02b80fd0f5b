"""Two runs that would write the same output at once: the second stops at once with one ``error (<command>): …``
line that names the first (pid, host, command, start), as DVC does for repro, and changes nothing; runs into other
folders go on side by side; a killed holder blocks no one.

The fast cases hold the lock from a small process of their own; the slow ones race two real stage runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

import pytest

from geofoundry.errors import GeofoundryError
from geofoundry.io.lock import lock_file, output_lock

from .conftest import RGB_SCENE, assert_error, run_cli, run_stage, snapshot
from .processes import assert_ok, cli_args, finish, hidden, interrupt, stage_args, start, wait_for
from .rasters import DEV_SCENE, SCENE

HOLD = ("import sys, time\nfrom geofoundry.io.lock import output_lock\n"
        "with output_lock(sys.argv[1]):\n    time.sleep(600)")  # holds the lock of output argv[1]


def holder(lock) -> dict:
    return json.loads(lock.read_text())


def in_use(path, info: dict) -> str:
    return (f"{path}: another run is writing it: pid {info['pid']} on {info['host']}, `{info['command']}`, since "
            f"{info['since']}; wait for it to end, or stop it (kill {info['pid']})")


def held_by(lock, proc):
    """True once ``proc`` holds ``lock`` (the file names it)."""
    def check() -> bool:
        try:
            return holder(lock)["pid"] == proc.pid
        except (OSError, ValueError, KeyError):
            return False
    return check


@pytest.fixture
def hold(tmp_path):
    """``hold(path)``: a process of its own holds the lock of output ``path`` (relative to the test's folder) until
    the test ends; returns what the lock file says of it."""
    procs = []

    def take(path, cwd=tmp_path) -> dict:
        proc = start([sys.executable, "-c", HOLD, str(path)], cwd)
        procs.append(proc)
        lock = lock_file(cwd / path)
        wait_for(held_by(lock, proc), proc)
        return holder(lock)

    yield take
    for proc in procs:
        interrupt(proc, signal.SIGKILL)


def test_a_second_lock_of_the_same_output_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "predictions"
    with output_lock(out):
        info = holder(lock_file(out))
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(GeofoundryError) as refused, output_lock(out):
            pass
        assert str(refused.value) == in_use(out, info)
    assert not lock_file(out).exists()


def test_a_lock_file_that_names_no_one_still_refuses(tmp_path):
    """The holder has locked the file but not yet written its name."""
    out = tmp_path / "out"
    with output_lock(out):
        lock_file(out).write_text("")
        with pytest.raises(GeofoundryError, match=r"^.*/out: another run is writing it: a process that is starting; "
                                                  r"wait for it to end$"), output_lock(out):
            pass


def test_a_failed_run_leaves_no_folder_it_made(tmp_path):
    with pytest.raises(GeofoundryError), output_lock(tmp_path / "new" / "deep" / "out"):
        (tmp_path / "new" / "deep" / "out").mkdir()
        raise GeofoundryError("bad input")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_holder_blocks_no_one(tmp_path):
    """kill -9 leaves the lock file, but the lock died with its process: the next run takes it."""
    proc = start([sys.executable, "-c", HOLD, "out"], tmp_path)
    wait_for(held_by(lock_file(tmp_path / "out"), proc), proc)
    interrupt(proc, signal.SIGKILL)
    assert lock_file(tmp_path / "out").exists()
    with output_lock(tmp_path / "out"):
        assert holder(lock_file(tmp_path / "out"))["pid"] == os.getpid()
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("stage, output", [("predict", "data/predictions"), ("postprocess", "data/vectors"),
                                           ("select", "data/selection")])
def test_a_stage_whose_output_another_run_writes_is_refused(workspace, hold, stage, output):
    info = hold(output, workspace)
    before = snapshot(workspace)
    assert_error(run_stage(workspace, stage), stage, in_use(output, info))
    assert snapshot(workspace) == before


def test_predict_bundle_into_a_folder_another_run_writes(bundle, tmp_path, hold):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.gpkg").write_text("an earlier result")
    info = hold("out")
    before = snapshot(tmp_path)
    proc = run_cli("predict", "--bundle", str(bundle), str(RGB_SCENE), "--out", "out", cwd=tmp_path)
    assert_error(proc, "predict", in_use("out", info))
    assert snapshot(tmp_path) == before


def test_evaluate_bundle_into_a_folder_another_run_writes(bundle, small_raw, tmp_path, hold):
    info = hold("acc")
    before = snapshot(tmp_path)
    proc = run_cli("evaluate", "--bundle", str(bundle), "--data", str(small_raw), "--out", "acc", cwd=tmp_path)
    assert_error(proc, "evaluate", in_use("acc", info))
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- real races


def second_run_while_first_holds(first, lock, second):
    """Run ``second()`` while ``first`` (started) holds ``lock``: ``first`` is paused (SIGSTOP) once it holds it,
    so the race always meets it, and resumed after; returns what ``second()`` returned and the holder's info."""
    wait_for(held_by(lock, first), first)
    first.send_signal(signal.SIGSTOP)
    try:
        info = holder(lock)
        return second(), info
    finally:
        first.send_signal(signal.SIGCONT)



@pytest.mark.slow
def test_two_predict_stages_in_one_workspace(project):
    """The second run once deleted the first's files in flight; now it stops at once, and the first finishes."""
    lock = project / "data" / ".predictions.lock"
    first = start(stage_args("predict"), project)
    second, info = second_run_while_first_holds(first, lock, lambda: run_stage(project, "predict"))
    assert_error(second, "predict", in_use("data/predictions", info))
    assert_ok(finish(first))
    assert hidden(project) == [] and len(list((project / "data" / "predictions" / "test").glob("*.tif"))) == 2


@pytest.mark.slow
def test_two_preprocess_stages_in_one_workspace(project):
    lock = project / "data" / ".chips.lock"
    first = start(stage_args("preprocess"), project)
    second, info = second_run_while_first_holds(first, lock, lambda: run_stage(project, "preprocess"))
    assert_error(second, "preprocess", in_use("data/chips", info))
    assert_ok(finish(first))
    assert hidden(project) == []


@pytest.mark.slow
def test_two_bundle_predictions_into_one_folder(bundle, tmp_path):
    args = ("predict", "--bundle", bundle, DEV_SCENE, "--out", "out")
    first = start(cli_args(*args), tmp_path)
    second, info = second_run_while_first_holds(first, tmp_path / ".out.lock",
                                                lambda: run_cli(*map(str, args), cwd=tmp_path))
    assert_error(second, "predict", in_use("out", info))
    assert_ok(finish(first))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{SCENE}.gpkg", f"{SCENE}.tif"]
    assert hidden(tmp_path) == []


@pytest.mark.slow
def test_bundle_predictions_into_two_folders_run_side_by_side(bundle, tmp_path):
    runs = [start(cli_args("predict", "--bundle", bundle, DEV_SCENE, "--out", out), tmp_path) for out in ("a", "b")]
    for proc in runs:
        assert_ok(finish(proc))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in (tmp_path / "b").iterdir())
