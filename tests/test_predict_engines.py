"""Which engine runs a model (the predict stage's checkpoint, a bundle's files), when a compiled package fits a
machine and why not, and how a bundle carries a package: only as ``model.pt2`` beside its ``compiled.json``, a zip
with no pickle and no member leaving it."""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
import zipfile

import pytest

from geofoundry.bundle import open_bundle
from geofoundry.bundle.format import FORMAT_VERSION
from geofoundry.bundle.manifest import check_type
from geofoundry.errors import GeofoundryError
from geofoundry.models.engines import ENGINES, bundle_engine, machine, mismatch, stage_engine

from .test_bundle_format import CURRENT, as_json, rewrite

H200 = {"device": "cuda", "gpu": "NVIDIA H200", "capability": "9.0", "torch": "2.11.0+cu130", "cuda": "13.0"}
SAID = "it was compiled for NVIDIA H200 (compute capability 9.0, CUDA 13.0), torch 2.11.0+cu130"


def test_the_stage_runs_compiled_on_a_gpu_and_eager_on_the_cpu():
    assert ENGINES == ("auto", "eager", "compiled", "onnx")
    assert stage_engine("auto", cuda=True) == "compiled" and stage_engine("auto", cuda=False) == "eager"
    assert stage_engine("eager", cuda=True) == "eager" and stage_engine("compiled", cuda=False) == "compiled"
    with pytest.raises(GeofoundryError, match="predict.engine: onnx runs a delivered bundle's model.onnx"):
        stage_engine("onnx", cuda=True)


def test_a_package_fits_gpus_of_its_capability_with_its_torch():
    assert mismatch(H200, {**H200, "gpu": "NVIDIA H100 80GB HBM3"}) is None  # same machine code: sm_90
    a100 = {**H200, "gpu": "NVIDIA A100-SXM4-80GB", "capability": "8.0"}
    assert mismatch(H200, a100) == (f"{SAID}; this machine has NVIDIA A100-SXM4-80GB (compute capability 8.0, "
                                    "CUDA 13.0), torch 2.11.0+cu130")
    assert mismatch(H200, {**H200, "torch": "2.12.0+cu130"}).endswith("CUDA 13.0), torch 2.12.0+cu130")
    here = machine("cpu")  # this machine, for real
    assert here["device"] == "cpu" and here["torch"] and mismatch(here, here) is None
    assert mismatch(H200, here) == f"{SAID}; torch has no cuda device on this machine"
    assert mismatch({**here, "torch": "0.0.0"}, here) == (f"it was compiled for {here['cpu']} CPU, torch 0.0.0; "
                                                          f"this machine has {here['cpu']} CPU, torch {here['torch']}")


@pytest.mark.parametrize("requested, built, pinned, expected", [
    ("onnx", H200, True, ("onnx", None)),
    ("auto", None, True, ("onnx", "the bundle has no compiled package (model.pt2)")),
    ("auto", H200, False, ("onnx", ("its compiled package (model.pt2, machine code) is loaded only from a bundle "
                                    "pinned with --sha256, or with --engine compiled"))),
    ("auto", H200, True, ("compiled", None)),
    ("compiled", H200, False, ("compiled", None)),
    ("auto", {**H200, "capability": "8.0"}, True,
     ("onnx", ("its compiled package does not fit this machine: it was compiled for NVIDIA H200 (compute capability "
               "8.0, CUDA 13.0), torch 2.11.0+cu130; this machine has NVIDIA H200 (compute capability 9.0, CUDA "
               "13.0), torch 2.11.0+cu130"))),
    ("auto", {"device": "cpu", "cpu": "x86_64", "torch": "2.11.0+cu130"}, True,
     ("onnx", "its compiled package is for x86_64 CPU, torch 2.11.0+cu130 (auto uses GPU packages only)")),
])
def test_which_engine_runs_a_bundle(requested, built, pinned, expected):
    """On an H200 with torch 2.11 (the machine described to the choice)."""
    assert bundle_engine(requested, built, pinned, here=lambda device: H200 if device == "cuda" else None) == expected


def test_a_gpu_bundle_on_a_cpu_machine_falls_back_or_stops_with_the_reason():
    odd = {**H200, "capability": "1.0"}  # no such GPU, whatever this machine has
    engine, reason = bundle_engine("auto", odd, pinned=True)
    assert engine == "onnx" and reason.startswith("its compiled package does not fit this machine: it was compiled "
                                                  "for NVIDIA H200 (compute capability 1.0")
    with pytest.raises(GeofoundryError, match=r"--engine compiled: its compiled package does not fit this machine"):
        bundle_engine("compiled", odd, pinned=True)
    with pytest.raises(GeofoundryError, match="--engine compiled: the bundle has no compiled package"):
        bundle_engine("compiled", None, pinned=True)
    with pytest.raises(GeofoundryError, match="--engine eager: a bundle holds no PyTorch model"):
        bundle_engine("eager", H200, pinned=True)


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("name, data, message", [
    ("weights.pt2", zipped({"m/x.so": b"\x7fELF"}), "weights.pt2: a pickled/serialized object (.pt2)"),
    ("model.pt2", b"\x7fELF not a zip", "model.pt2: not a compiled package (zip archive)"),
    ("model.pt2", zipped({"m/data.pkl": b"\x80\x04K\x01."}), "member 'm/data.pkl' is a pickle"),
    ("model.pt2", zipped({"m/weights": pickle.dumps([1])}), "member 'm/weights' is a pickle"),
    ("model.pt2", zipped({"../m/x.so": b"\x7fELF"}), "member '../m/x.so' leaves the package"),
    ("model.pt2", zipped({"/etc/x.so": b"\x7fELF"}), "member '/etc/x.so' leaves the package"),
])
def test_only_model_pt2_may_be_a_zip_and_it_holds_no_pickle(name, data, message):
    with pytest.raises(GeofoundryError, match=re.escape(message)):
        check_type(name, data)
    check_type("model.pt2", zipped({"m/archive_format": b"pt2", "m/data/aotinductor/model/x.wrapper.so": b"\x7fELF"}))


def test_a_package_comes_with_its_record_and_fits_the_bundle(tmp_path):
    bundle = shutil.copytree(CURRENT, tmp_path / "bundle")
    package = zipped({"m/archive_format": b"pt2", "m/data/aotinductor/model/x.wrapper.so": b"\x7fELF"})
    rewrite(bundle, {"model.pt2": package})
    with pytest.raises(GeofoundryError, match="model.pt2 and compiled.json come together; this bundle has only "
                                              "model.pt2"):
        open_bundle(bundle)
    record = {**H200, "precision": "bfloat16", "bands": 3, "tile": 512, "max_batch": 4}
    rewrite(bundle, {"compiled.json": as_json(record)})
    with pytest.raises(GeofoundryError, match=r"compiled.json: a package for 3 bands and 512 px tiles, but stats.json "
                                              r"names 3 bands and predict.yaml 256 px tiles"):
        open_bundle(bundle)
    rewrite(bundle, {"compiled.json": as_json({**record, "tile": 256})})
    opened = open_bundle(bundle)
    assert opened.compiled == {**record, "tile": 256} and opened.files["model.pt2"] == package
    assert not opened.pinned and open_bundle(bundle, opened.digest).pinned
    assert json.loads((bundle / "bundle.json").read_text())["format_version"] == FORMAT_VERSION
