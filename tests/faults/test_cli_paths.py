"""Faults in the paths a command is given or writes to: ``--out`` that is a file, on a read-only or a full device,
scenes and folders that are not what they should be, stage outputs that cannot be written. One
``error (<command>): …`` message naming the path, exit status 1, and what was there before is still there, whole."""

from __future__ import annotations

import os
import pickle
import re
import shutil

import pytest

from .conftest import (RGB_SCENE, assert_error, left_on_device, link_tree, needs_mounts, on_device, replace_bytes,
                       run_cli, run_stage, snapshot)


@pytest.fixture
def site(tmp_path, bundle):
    """A client's folder: the bundle, a small RGB scene and an earlier result in out/."""
    link_tree(bundle, tmp_path / "bundle")
    shutil.copy(RGB_SCENE, tmp_path / "rio.tif")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.gpkg").write_text("an earlier result")
    return tmp_path


def predict(site, *args: str, prefix: tuple[str, ...] = ()):
    return run_cli("predict", "--bundle", "bundle", *args, cwd=site, prefix=prefix)


# (name, setup(site), predict arguments, expected message)
PREDICT_CASES = [
    ("out is a file", lambda s: (s / "file").write_text("x"), ("rio.tif", "--out", "file"),
     "--out file: a file, not a folder"),
    ("out below a file", lambda s: (s / "file").write_text("x"), ("rio.tif", "--out", "file/sub"),
     "--out file/sub: a file, not a folder (file is one)"),
    ("out inside the bundle", None, ("rio.tif", "--out", "bundle/out"),
     "bundle/out: outputs must go outside the bundle bundle (it must stay unchanged)"),
    ("scene is a folder", lambda s: (s / "scenes").mkdir(), ("scenes", "--out", "out"),
     "scenes: no scene (.tif, .tiff, .jp2, .vrt, .img) in this folder"),
    ("scene missing", None, ("nothing.tif", "--out", "out"), "nothing.tif: scene not found"),
    ("brackets in a path", None, ("[bold]odd[/x]/rio.tif", "--out", "out"),
     "[bold]odd[/x]/rio.tif: scene not found, and no file matches it as a pattern"),
    ("scenes of one name", lambda s: ((s / "b").mkdir(), shutil.copy(s / "rio.tif", s / "b" / "rio.tif")),
     ("rio.tif", "b/rio.tif", "--out", "out"),
     "scene file names must differ (outputs are named after them): ['rio', 'rio']"),
    ("negative threads", None, ("rio.tif", "--out", "out", "--threads", "-1"),
     "--threads -1: give 0 (all cores) or a number of threads"),
    ("bands of another count", None, ("rio.tif", "--out", "out", "--bands", "red,green"),
     "rio.tif: --bands names 2 bands (['red', 'green']) but the scene has 3"),
    ("bands the model lacks", None, ("rio.tif", "--out", "out", "--bands", "red,green,nir"),
     "rio.tif: bands ['red', 'green', 'nir'] (from --bands) lack ['blue']; the model needs ['red', 'green', 'blue']"),
]


@pytest.mark.parametrize("name, setup, args, message", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_predict_bundle_paths(site, name, setup, args, message):
    if setup:
        setup(site)
    before = snapshot(site)
    assert_error(predict(site, *args), "predict", message)
    assert snapshot(site) == before


# (name, command arguments, expected message) for messages that come before any work
USAGE_CASES = [
    ("scene without bundle", ("predict", "rio.tif"), "predict",
     "scene files need --bundle <dir>; without it the stage runs"),
    ("bundle without scene", ("predict", "--bundle", "bundle"), "predict", "--bundle needs at least one scene file"),
    ("data without bundle", ("evaluate", "--data", "raw"), "evaluate",
     "--data needs --bundle <dir>; without it the stage runs"),
    ("bundle without data", ("evaluate", "--bundle", "bundle"), "evaluate", "--bundle needs --data <raw dataset root>"),
    ("evaluate data missing", ("evaluate", "--bundle", "bundle", "--data", "nothing"), "evaluate",
     "--data nothing: not found"),
    ("evaluate data is a file", ("evaluate", "--bundle", "bundle", "--data", "rio.tif"), "evaluate",
     "--data rio.tif: a file, not a folder"),
    ("evaluate out is a file", ("evaluate", "--bundle", "bundle", "--data", "out", "--out", "rio.tif"), "evaluate",
     "--out rio.tif: a file, not a folder"),
    ("evaluate iou above 1", ("evaluate", "--bundle", "bundle", "--data", "out", "--iou", "1.5"), "evaluate",
     "--iou 1.5: Input should be less than or equal to 1"),
    ("params file missing", ("select", "--params", "nothing.yaml"), "select",
     "nothing.yaml: parameters file not found (run from the project root)"),
    ("params file is a folder", ("train", "--params", "out"), "train", "out: a folder, not a parameters file"),
    ("report out is a file", ("report", "--out", "rio.tif"), "report", "--out rio.tif: a file, not a folder"),
    ("report repo missing", ("report", "--repo", "nothing", "--out", "plots"), "report", "--repo nothing: not found"),
]


@pytest.mark.parametrize("name, args, stage, message", USAGE_CASES, ids=[c[0] for c in USAGE_CASES])
def test_command_paths(site, name, args, stage, message):
    before = snapshot(site)
    assert_error(run_cli(*args, cwd=site), stage, message)
    assert snapshot(site) == before


def test_catalog_paths(workspace):
    (workspace / "catalog").write_text("a file")
    before = snapshot(workspace)
    assert_error(run_cli("catalog", "--raw", "nothing", cwd=workspace), "catalog",
                 "nothing: raw dataset folder not found (run `dvc pull` to fetch the default data)")
    (workspace / "raw").mkdir()  # empty: the folder check comes before any scan
    before = snapshot(workspace)
    assert_error(run_cli("catalog", "--raw", "raw", "--out", "catalog", cwd=workspace), "catalog",
                 "--out catalog: a file, not a folder")
    assert snapshot(workspace) == before


@pytest.mark.parametrize("stage, blocked, message", [
    ("postprocess", "data/vectors", "postprocess output data/vectors: a file, not a folder"),
    ("select", "data", "select output data/selection: a file, not a folder (data is one)"),
    ("export", "export", "export output export: a file, not a folder"),
])
def test_stage_output_folder_is_a_file(workspace, stage, blocked, message):
    """Checked before the stage starts: a stage never fails at its last write after replacing its first outputs."""
    shutil.rmtree(workspace / blocked)
    (workspace / blocked).write_text("a file where a folder belongs")
    before = snapshot(workspace)
    assert_error(run_stage(workspace, stage), stage, message)
    assert snapshot(workspace) == before


def test_stage_input_missing(workspace):
    """An earlier stage's output that is not there: the file is named (the generic path for failed reads)."""
    before = snapshot(workspace)
    assert_error(run_stage(workspace, "postprocess"), "postprocess",
                 "data/selection/classes.json: classes (select stage) file not found")
    assert snapshot(workspace) == before


@needs_mounts
def test_out_on_a_read_only_device(site):
    seed = site / "out"
    proc = predict(site, "rio.tif", "--out", "out", prefix=on_device(site / "out", readonly=True, seed=seed))
    assert_error(proc, "predict", "--out out: out is on a read-only file system")
    assert left_on_device(proc) == snapshot(seed)


@needs_mounts
def test_out_on_a_full_device(site):
    """The device fills up while the scene is written: an error naming the file, the earlier result as it was and
    no part of the new one (its temporary folder removed)."""
    seed = site / "out"
    proc = predict(site, "rio.tif", "--out", "out", prefix=on_device(site / "out", size="48k", seed=seed))
    assert_error(proc, "predict", re.compile(
        r"out/\.predict\.\w+\.tmp/predictions/rio\.tif: no space left on the device of "
        r"out/\.predict\.\w+\.tmp/predictions "
        r"while writing it; it is unchanged \(free space and run again\)"))
    assert left_on_device(proc) == snapshot(seed)


@needs_mounts
def test_stage_output_on_a_read_only_device(workspace):
    seed = workspace / "data" / "vectors"
    proc = run_stage(workspace, "postprocess", prefix=on_device(seed, readonly=True, seed=seed))
    assert_error(proc, "postprocess", "postprocess output data/vectors: data/vectors is on a read-only file system")
    assert left_on_device(proc) == snapshot(seed)


@pytest.mark.slow  # the train stage imports torch and builds the model before it reads its inputs (~6 s each)
@pytest.mark.parametrize("damage, message", [
    (lambda t: t.replace('"bands": [', '"bands": "rgb", "was": ['),
     "data/chips/stats.json: invalid input spec\n  bands: Input should be a valid list\n"
     "  was: Unexpected keyword argument"),
    (lambda t: t.replace('"red"', '"r\udce9d"'),
     "data/chips/stats.json:3: the input spec file is not UTF-8 text (byte 0xe9); save it as UTF-8"),
], ids=["wrong types", "not UTF-8"])
def test_stage_input_broken(workspace, chips_dir, damage, message):
    """The preprocess stage's stats.json, broken: the train stage names the file and the keys."""
    shutil.rmtree(workspace / "data" / "chips")
    stats = link_tree(chips_dir, workspace / "data" / "chips") / "stats.json"
    replace_bytes(stats, damage(stats.read_text()).encode("utf-8", "surrogateescape"))
    before = snapshot(workspace)
    assert_error(run_stage(workspace, "train"), "train", message)
    assert snapshot(workspace) == before


@pytest.mark.slow  # the train stage imports torch and builds the model before it reads last.pt
def test_malicious_last_checkpoint(workspace, chips_dir):
    """A last.pt that would run a command when unpickled: refused unread, the command never runs."""
    class Payload:
        def __reduce__(self):
            return os.system, ("touch PWNED",)

    shutil.rmtree(workspace / "data" / "chips")
    link_tree(chips_dir, workspace / "data" / "chips")
    (workspace / "models" / "last.pt").write_bytes(pickle.dumps({"format": "geofoundry-checkpoint/1", "x": Payload()}))
    before = snapshot(workspace)
    assert_error(run_stage(workspace, "train"), "train", re.compile(
        r"models/last\.pt: not a readable weights-only checkpoint \(it holds more than tensors and plain values, so "
        r"it was refused unread: .+\); train\.resume reads it to continue a run: move it away or set "
        r"train\.resume: false"))
    assert snapshot(workspace) == before
    assert not (workspace / "PWNED").exists()
