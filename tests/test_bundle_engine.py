"""TensorRT through NVIDIA's tools: the exact trtexec and polygraphy command lines, the message naming missing tools,
build_engine.sh running the same trtexec lines, and polygraphy's onnxruntime run on real val chips. TensorRT itself
is not installed here, so no engine is built."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geofoundry.bundle import open_bundle
from geofoundry.bundle.engine import TOOLS, load_chips, load_outputs, run_tool, save_inputs, tools_missing
from geofoundry.bundle.onnx_session import onnx_session
from geofoundry.bundle.trt_commands import Profile, polygraphy_calibrate, polygraphy_run, trtexec_build
from geofoundry.errors import GeofoundryError
from geofoundry.export.delivery import build_engine_script
from geofoundry.models.input_spec import InputSpec

from .project import env
from .test_bundle_format import CURRENT

PROFILE = Profile(bands=3, tile=512, batch=8)
SHAPES = ["--minShapes=raw:1x3x32x32", "--optShapes=raw:8x3x512x512", "--maxShapes=raw:8x3x512x512"]


def test_trtexec_command_lines():
    assert trtexec_build("m.onnx", "e.plan", PROFILE) == [
        "trtexec", "--onnx=m.onnx", "--saveEngine=e.plan", *SHAPES, "--fp16", "--skipInference"]
    assert trtexec_build("m.onnx", "e.plan", PROFILE, calib="c.cache") == [
        "trtexec", "--onnx=m.onnx", "--saveEngine=e.plan", *SHAPES, "--fp16", "--int8", "--calib=c.cache",
        "--skipInference"]


def test_polygraphy_command_lines():
    assert polygraphy_calibrate("m.onnx", "e.plan", PROFILE, "calib.json", "c.cache", side=256) == [
        "polygraphy", "convert", "m.onnx", "--convert-to", "trt", "-o", "e.plan", "--fp16", "--int8",
        "--load-inputs", "calib.json", "--calibration-cache", "c.cache",
        "--trt-min-shapes", "raw:[1,3,32,32]", "--trt-opt-shapes", "raw:[8,3,512,512]",
        "--trt-max-shapes", "raw:[8,3,512,512]",
        "--trt-min-shapes", "raw:[1,3,256,256]", "--trt-opt-shapes", "raw:[1,3,256,256]",
        "--trt-max-shapes", "raw:[1,3,256,256]"]
    assert polygraphy_run("e.plan", "in.json", "out.json", engine=True) == [
        "polygraphy", "run", "e.plan", "--model-type", "engine", "--trt", "--load-inputs", "in.json",
        "--save-outputs", "out.json"]
    assert polygraphy_run("m.onnx", "in.json", "out.json", engine=False) == [
        "polygraphy", "run", "m.onnx", "--onnxrt", "--load-inputs", "in.json", "--save-outputs", "out.json"]


def test_missing_tools_are_named_with_what_to_install(tmp_path):
    assert tools_missing(path=str(tmp_path)) == (  # nothing on this PATH; TensorRT's bindings are not installed here
        f"TensorRT tools not found: {TOOLS['trtexec']}; {TOOLS['polygraphy']}; {TOOLS['tensorrt']}. Install them on "
        "the target GPU machine, or run the bundle's build_engine.sh where trtexec is")
    assert "pip install polygraphy" in TOOLS["polygraphy"] and "pip install tensorrt" in TOOLS["tensorrt"]
    assert tools_missing(path=env()["PATH"]) == (  # the test environment has polygraphy (dev extra), no TensorRT
        f"TensorRT tools not found: {TOOLS['trtexec']}; {TOOLS['tensorrt']}. Install them on the target GPU "
        "machine, or run the bundle's build_engine.sh where trtexec is")


def test_build_engine_cli_names_the_missing_tools(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "geofoundry", "build-engine", "--bundle", str(CURRENT)],
                          cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"error (build-engine): {tools_missing(path=env()['PATH'])}" in " ".join(proc.stderr.split())
    assert not list(tmp_path.iterdir()), "no engine file claimed"


def test_build_engine_sh_runs_the_same_trtexec_lines(tmp_path):
    """The kept bundle's script is what the export writes now, and bash expands it to the Python command lines
    (checked with a stand-in `trtexec` that records its arguments: TensorRT is not installed here)."""
    bundle = open_bundle(CURRENT)
    cfg, spec = bundle.predict, bundle.spec
    assert bundle.text("build_engine.sh") == build_engine_script(spec, cfg.tile, cfg.batch_size)
    site = Path(shutil.copytree(CURRENT, tmp_path / "bundle")).resolve()
    assert os.access(site / "build_engine.sh", os.X_OK)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "trtexec").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    (bin_dir / "trtexec").chmod(stat.S_IRWXU)
    profile = Profile(len(spec.bands), cfg.tile, cfg.batch_size)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        environ = {**env(), "PATH": f"{bin_dir}:{os.environ['PATH']}", "ARGS_FILE": str(tmp_path / "args"), **extra}
        return subprocess.run([str(site / "build_engine.sh"), *args], cwd=tmp_path, env=environ, capture_output=True,
                              text=True)

    def recorded() -> list[str]:
        return ["trtexec", *(tmp_path / "args").read_text().splitlines()]

    assert run().returncode == 0
    assert recorded() == trtexec_build(f"{site}/model.onnx", "model_fp16.plan", profile)
    assert run("int8", "my cache.bin", OUT="/tmp/e 8.plan").returncode == 0
    assert recorded() == trtexec_build(f"{site}/model.onnx", "/tmp/e 8.plan", profile, calib="my cache.bin")
    no_cache = run("int8")
    assert no_cache.returncode != 0 and "usage:" in no_cache.stderr
    assert run("fp32").returncode == 2


@pytest.mark.slow
def test_polygraphy_runs_on_real_val_chips(chips_dir, tmp_path, monkeypatch):
    """build-engine's reference run, for real: chips saved for polygraphy, the bundle's model in onnxruntime through
    `polygraphy run`, its outputs read back, equal to the bundle's own onnxruntime session. polygraphy accepts the
    TensorRT lines too and stops only for want of TensorRT."""
    monkeypatch.setenv("PATH", env()["PATH"])  # this venv's polygraphy
    monkeypatch.delenv("POLYGRAPHY_AUTOINSTALL_DEPS", raising=False)
    bundle = open_bundle(CURRENT)
    chips = load_chips(chips_dir, "val", 5, InputSpec.load(chips_dir / "stats.json"))
    (tmp_path / "model.onnx").write_bytes(bundle.model)
    save_inputs(tmp_path / "val.json", chips, batch=2, tile=bundle.predict.tile)
    run_tool(polygraphy_run(str(tmp_path / "model.onnx"), str(tmp_path / "val.json"), str(tmp_path / "out.json"),
                            engine=False))
    got = load_outputs(tmp_path / "out.json")
    expected = onnx_session(bundle.model, len(bundle.spec.bands))(chips)
    assert got.shape == expected.shape == (5, len(bundle.outputs), *chips.shape[2:])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(GeofoundryError, match="do not fit the engine's tiles"):
        save_inputs(tmp_path / "big.json", chips, batch=2, tile=chips.shape[-1] - 32)
    no_tensorrt = r"polygraphy failed \(exit [1-9][\s\S]*'tensorrt' is required but could not be imported"
    with pytest.raises(GeofoundryError, match=no_tensorrt):
        profile = Profile(len(bundle.spec.bands), bundle.predict.tile, 2)
        run_tool(polygraphy_calibrate(str(tmp_path / "model.onnx"), str(tmp_path / "e.plan"), profile,
                                      str(tmp_path / "val.json"), str(tmp_path / "c.cache"), side=chips.shape[-1]))
    with pytest.raises(GeofoundryError, match=no_tensorrt):
        run_tool(polygraphy_run(str(tmp_path / "model.onnx"), str(tmp_path / "val.json"), str(tmp_path / "t.json"),
                                engine=True))
    with pytest.raises(GeofoundryError, match=r"trtexec is not on PATH: trtexec \(in bin/ of TensorRT"):
        run_tool(trtexec_build(str(tmp_path / "model.onnx"), str(tmp_path / "e.plan"), PROFILE))
    with pytest.raises(GeofoundryError, match=r"polygraphy failed \(exit [1-9]"):
        run_tool(polygraphy_run(str(tmp_path / "missing.onnx"), str(tmp_path / "val.json"), str(tmp_path / "x.json"),
                                engine=False))
