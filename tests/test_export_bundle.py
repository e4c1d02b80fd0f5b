"""Export stage on a model trained on real DEV chips: ONNX parity, the bundle, `geofoundry predict --bundle` in a
clean process against the predict stage's own code, a refused tampered bundle, TensorRT honesty, GTO versions."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyogrio
import pytest
import rasterio
import yaml

from geofoundry.bundle import open_bundle
from geofoundry.bundle.engine import tools_missing
from geofoundry.bundle.reader import REQUIRED
from geofoundry.errors import GeofoundryError
from geofoundry.export.card import render_markdown

from .project import ROOT, env
from .test_bundle_format import CURRENT, contract

SCENE = "kampala_ug_z19"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`geofoundry ...` in a fresh interpreter (import log on stderr), away from the repository and params.yaml."""
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "geofoundry", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def bundle_run(exported, small_raw, tmp_path_factory):
    """`geofoundry predict --bundle` on a real DEV scene in a clean process, from an empty folder."""
    cwd = tmp_path_factory.mktemp("site")
    proc = cli("predict", "--bundle", str(exported["bundle"]), str(small_raw / "images" / f"{SCENE}.tif"),
               "--out", "out", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    return {"out": cwd / "out", "stderr": proc.stderr, "modules": modules}


def test_onnx_parity_and_dynamic_shapes(exported):
    metrics = exported["metrics"]
    assert metrics["onnx"]["passed"] and metrics["onnx"]["max_abs_diff"] < 1e-3
    assert metrics["onnx"]["mask_agreement"] > 0.999
    assert json.loads((exported["dir"] / "export.json").read_text()) == metrics
    session = ort.InferenceSession(str(exported["dir"] / "model.onnx"), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 96, 160), (3, 3, 64, 64)]:
        probs = session.run(None, {"raw": np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)})[0]
        assert probs.shape == (shape[0], 2, *shape[2:])
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_tensorrt_is_recorded_as_not_exercised(exported, tmp_path):
    if exported["metrics"]["tensorrt"]["built"]:
        pytest.skip("TensorRT is installed here: the engine was built and checked by the export stage")
    reason = tools_missing()
    assert exported["metrics"]["tensorrt"] == {"built": False, "exercised": False, "reason": reason}
    proc = cli("build-engine", "--bundle", str(exported["bundle"]), "--int8", "--calib-chips", "8", cwd=tmp_path)
    assert proc.returncode == 1 and tools_missing(env()["PATH"]) in " ".join(proc.stderr.split()), proc.stderr[-2000:]
    assert not list(tmp_path.iterdir()), "no engine file claimed"


def test_bundle_is_complete_checksummed_and_carded(exported):
    bundle, params = exported["bundle"], exported["params"]
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*REQUIRED, "SHA256SUMS"])
    assert not [p for p in exported["dir"].iterdir() if p.name.startswith(".")], "temporary folder left behind"
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=bundle, check=True)
    subprocess.run(["bash", "-n", "build_engine.sh"], cwd=bundle, check=True)
    opened = open_bundle(bundle, exported["metrics"]["bundle"]["sha256sums_sha256"])
    card = opened.card
    assert card["params"] == params.model_dump(mode="json") and card["model"]["preset"] == "unet"
    assert "Labels © OpenStreetMap contributors, ODbL 1.0" in card["data"]["licence_and_attribution"]
    assert "OpenAerialMap / Open Imagery Network contributors, CC-BY 4.0" in card["data"]["licence_and_attribution"]
    assert card["code"]["git_revision"].startswith("unknown")  # the export folder is no git repository
    assert card["metrics"]["train"] and card["metrics"]["evaluate"] is None
    assert card["metrics"]["export"]["onnx"]["passed"]
    assert opened.postprocess == params.postprocess and opened.predict.tile == 256
    card_md = opened.text("MODEL_CARD.md")
    assert "CC-BY 4.0" in card_md and "| export | onnx.max_abs_diff |" in card_md and "not versioned by DVC" in card_md
    assert "measured on predictions made with" not in card_md  # no TTA, no ensemble: the bundle's own setting
    assert f"as bundle format `{card['format']}` (`bundle.json`)" in " ".join(card_md.split())
    with_tta = {**card["params"]["predict"], "tta": "d4", "ensemble": [{"path": "ensemble/a.pt", "weight": 1.0}]}
    caveat = " ".join(render_markdown({**card, "params": {**card["params"], "predict": with_tta}}).split())
    assert ("made with test-time augmentation (`predict.tta: d4`) and 1 more model(s) averaged in "
            "(`predict.ensemble`); this bundle runs `model.onnx` alone without them") in caveat
    docker = opened.text("Dockerfile")
    assert f"onnxruntime=={version('onnxruntime')}" in docker and "torch==" not in docker
    assert 'ENTRYPOINT ["geofoundry", "predict", "--bundle", "/bundle"]' in docker


def test_export_writes_the_kept_bundle_s_format(exported):
    """A change to what the reader parses must come with a new format version, an upgrader and a kept bundle of it
    (see geofoundry.bundle.format): otherwise bundles written now would not read with the reader of their version."""
    assert contract(exported["bundle"]) == contract(CURRENT), (
        f"the export no longer writes bundles like {CURRENT.name}: raise bundle.format.FORMAT_VERSION, add an "
        "upgrader from the current version and run tests/fixtures/make_bundle.py")
    assert open_bundle(exported["bundle"]).format_version == open_bundle(CURRENT).format_version


def test_bundle_predict_matches_the_predict_stage(exported, bundle_run, small_raw, tiny_model, tmp_path):
    from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint
    from geofoundry.models.deployed import DeployedModel
    from geofoundry.predict.run import predict_scene
    from geofoundry.predict.torch_model import torch_model_fn

    opened = open_bundle(exported["bundle"])
    spec, row = opened.spec, pd.read_csv(small_raw / "scenes.csv").set_index("scene_id").loc[SCENE]
    model = DeployedModel(model_from_checkpoint(load_checkpoint(tiny_model)), spec.low, spec.high)
    ref = tmp_path / "ref.tif"
    assert predict_scene(str(small_raw / row["image"]), row["band_names"].split("|"), float(row["gsd_m"]), None,
                         spec, torch_model_fn(model, "cpu"), opened.predict, ref)
    with rasterio.open(ref) as a, rasterio.open(bundle_run["out"] / f"{SCENE}.tif") as b:
        assert (a.crs, a.transform, a.shape, a.count) == (b.crs, b.transform, b.shape, b.count)
        assert np.array_equal(a.dataset_mask(), b.dataset_mask()) and a.dataset_mask().any()
        assert np.abs(a.read().astype(int) - b.read().astype(int)).max() <= 1  # round(255·p): float noise only
    objects = pyogrio.read_dataframe(bundle_run["out"] / f"{SCENE}.gpkg", layer="objects")
    assert {"class_name", "score", "area_m2"} <= set(objects.columns) and objects.crs.to_epsg() == 3857
    assert "assuming the model's order" in bundle_run["stderr"]  # DEV scenes have no band descriptions


def test_bundle_predict_loads_no_training_code(bundle_run):
    assert not {m for m in bundle_run["modules"] if m.split(".")[0] in ("dvc", "dvclive", "albumentations")
                or m.startswith("geofoundry.train")}


def test_bundle_predict_loads_no_torch(bundle_run):
    assert not {m for m in bundle_run["modules"] if m.split(".")[0] in ("torch", "segmentation_models_pytorch")}


@pytest.mark.slow
def test_inference_install_predicts_without_torch(exported, small_raw, tmp_path):
    """`pip install geofoundry[inference]` (pinned) in a new venv: no torch, and `geofoundry predict --bundle` and
    `geofoundry --version` work there; a training command says what to install."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    clean = {k: v for k, v in env().items() if k != "PYTHONPATH"}  # only what the venv installed
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c",
                          str(ROOT / "requirements.lock"), f"{ROOT}[inference]"], env=clean, capture_output=True,
                         text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    for absent in ("torch", "segmentation_models_pytorch", "dvc"):
        probe = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {absent}"], env=clean)
        assert probe.returncode != 0, f"{absent} is installed"
    geofoundry = str(venv / "bin" / "geofoundry")
    assert "torch not installed" in subprocess.run([geofoundry, "--version"], env=clean, capture_output=True,
                                                   text=True).stdout
    proc = subprocess.run([geofoundry, "predict", "--bundle", str(exported["bundle"]),
                           str(small_raw / "images" / f"{SCENE}.tif"), "--out", "out"], cwd=tmp_path, env=clean,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with rasterio.open(tmp_path / "out" / f"{SCENE}.tif") as ds:
        assert ds.count == 1 and ds.scales == (1 / 255,)
    assert [name for name, _ in pyogrio.list_layers(tmp_path / "out" / f"{SCENE}.gpkg")] == ["objects"]
    models = subprocess.run([geofoundry, "models", "--no-count"], env=clean, capture_output=True, text=True)
    assert models.returncode == 1 and "is not installed: this command needs the pipeline's training" in models.stderr
    assert 'pip install -c requirements.lock "geofoundry[train]"' in models.stderr


def _tamper_byte(b: Path, out: Path):
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (b / "model.onnx").write_bytes(bytes(data))


def _add_line(name: str, digest: str = "0" * 64):
    def tamper(b: Path, out: Path):
        (out / "outside.json").write_text("{}")
        with open(b / "SHA256SUMS", "a") as f:
            f.write(f"{digest}  {name}\n")
    return tamper


def _pickle_as_json(b: Path, out: Path):
    import hashlib

    (b / "card.json").write_bytes(pickle.dumps({"x": 1}))
    sums = b / "SHA256SUMS"
    lines = [ln if not ln.endswith("  card.json") else f"{hashlib.sha256((b / 'card.json').read_bytes()).hexdigest()}"
             "  card.json" for ln in sums.read_text().splitlines()]
    sums.write_text("\n".join(lines) + "\n")


TAMPERS = {
    "changed byte": (_tamper_byte, "model.onnx: checksum mismatch"),
    "../ in manifest": (_add_line("../outside.json"), "'../outside.json' escapes the bundle"),
    "absolute path": (_add_line("/etc/passwd"), "'/etc/passwd' escapes the bundle"),
    "added .pkl": (lambda b, o: (b / "model.pkl").write_bytes(pickle.dumps([1])), "model.pkl: a pickled"),
    "listed .pt": (_add_line("weights.pt"), "weights.pt: a pickled"),
    "pickle as json": (_pickle_as_json, "card.json: its content is a pickle"),
    "symlink out": (lambda b, o: ((b / "stats.json").unlink(), (b / "stats.json").symlink_to(o / "x.json")),
                    "stats.json is a symbolic link"),
    "unexpected file": (lambda b, o: (b / "notes.txt").write_text("hi"), "unexpected file(s) not in SHA256SUMS: notes"),
}


@pytest.mark.parametrize("case", TAMPERS)
def test_tampered_bundle_is_refused(exported, tmp_path, case):
    tamper, message = TAMPERS[case]
    bundle = shutil.copytree(exported["bundle"], tmp_path / "bundle")
    tamper(bundle, tmp_path)
    with pytest.raises(GeofoundryError) as err:
        open_bundle(bundle)
    assert message in str(err.value)


def test_cli_refuses_a_tampered_bundle(exported, small_raw, tmp_path):
    bundle = shutil.copytree(exported["bundle"], tmp_path / "bundle")
    _tamper_byte(bundle, tmp_path)
    proc = cli("predict", "--bundle", str(bundle), str(small_raw / "images" / f"{SCENE}.tif"), "--out", "out",
               cwd=tmp_path)
    assert proc.returncode == 1 and "checksum mismatch" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # tens of seconds on two cores
def test_gto_versions_and_dvc_artifacts_get(exported, spacenet_root, tmp_path):
    """Two registered versions in a git repo with a local DVC remote; another folder gets v0.1.0 and runs it."""
    from geofoundry.delivery.predict import predict_bundle
    from geofoundry.export.bundle import write_bundle

    def sh(*args, cwd=tmp_path / "repo"):
        proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout

    artifacts = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]
    name = next(n for n, a in artifacts.items() if a["type"] == "model")
    v1, v2, p = exported["bundle"], tmp_path / "v2", exported["params"]
    card = {**open_bundle(v1).card, "exported_at": "later"}
    write_bundle(v2, exported["dir"] / "model.onnx", open_bundle(v1).spec, open_bundle(v1).outputs, p.postprocess,
                 p.predict, card, p.export.docker_base)
    repo = tmp_path / "repo"
    (repo / "export").mkdir(parents=True)
    sh("git", "init", "-q", "-b", "main")
    sh("dvc", "init", "-q")
    sh("dvc", "remote", "add", "-d", "store", str(tmp_path / "remote"))
    for src, ver in [(v1, "v0.1.0"), (v2, "v0.2.0")]:
        stage = {"cmd": f"cp -R {src} {artifacts[name]['path']}", "outs": [artifacts[name]["path"]]}
        (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"export": stage}, "artifacts": artifacts}))
        sh("dvc", "repro", "-q")
        sh("git", "add", "-A")
        sh("git", "commit", "-qm", f"model {ver}")
        sh("dvc", "push", "-q")
        sh("gto", "register", name, "--version", ver)
    sh("gto", "assign", name, "--version", "v0.1.0", "--stage", "prod")
    shutil.rmtree(repo / ".dvc" / "cache")  # the client must get the files from the remote
    client = tmp_path / "client"
    client.mkdir()
    sh("dvc", "artifacts", "get", str(repo), name, "--rev", "v0.1.0", "-o", "v1", cwd=client)
    sh("dvc", "artifacts", "get", str(repo), name, "--stage", "prod", "-o", "prod", cwd=client)
    got = open_bundle(client / "v1", exported["metrics"]["bundle"]["sha256sums_sha256"])
    assert got.digest == open_bundle(client / "prod").digest != open_bundle(v2).digest
    scene = next((spacenet_root / "images").glob("*_3band.tif"))  # named bands, EPSG:4326, 0.48 m: warped
    result = predict_bundle(got, [scene], client / "out")
    assert result["scenes"] == [scene.stem] and (client / "out" / f"{scene.stem}.gpkg").is_file()


@pytest.mark.slow  # tens of seconds on two cores
def test_evaluate_bundle_on_a_client_dataset(exported, small_raw, tmp_path):
    """`geofoundry evaluate --bundle --data`: the acceptance run writes the keys of metrics/evaluate.json and the
    breakdowns of reports/evaluate.json, and prints the headline."""
    proc = cli("evaluate", "--bundle", str(exported["bundle"]), "--data", str(small_raw), "--out", "acc",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "acc" / "evaluate.json").read_text())
    for section, key in [("object", "f1"), ("object", "precision"), ("object", "recall"), ("pixel", "iou"),
                         ("pixel", "f1")]:
        assert 0 <= metrics[section][key] <= 1
    assert sorted(metrics["site_f1"]) == ["kampala_ug", "nairobi_ke"] and "object AP" in proc.stderr
    report = json.loads((tmp_path / "acc" / "report.json").read_text())
    assert sorted(report["per_scene"]) == ["kampala_ug_z19", "nairobi_ke_z19"]
    overlays = {p.name.split("__")[0] for p in (tmp_path / "acc" / "plots" / "overlays").glob("*__*.png")}
    assert overlays == {"kampala_ug_z19", "nairobi_ke_z19"}  # one per 150 m block of each scene


@pytest.mark.slow  # tens of seconds on two cores
def test_evaluate_bundle_on_spacenet_takes_rgb_refuses_uint16(exported, spacenet_root, tmp_path):
    proc = cli("evaluate", "--bundle", str(exported["bundle"]), "--data", str(spacenet_root), "--out", "acc",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scenes = json.loads((tmp_path / "acc" / "scenes.json").read_text())
    assert sorted(scenes["evaluated"]) == [f"rio_img{i:02d}_3band" for i in range(1, 11)]
    assert len(scenes["not_evaluated"]) == 10
    assert all("uint16 pixels" in r and "gdal_translate" in r for r in scenes["not_evaluated"])
    assert "rio_img04_8band: uint16 pixels" in proc.stderr


def test_evaluate_bundle_refuses_a_dataset_without_the_bands(exported, spacenet_root, tmp_path):
    scenes = pd.read_csv(spacenet_root / "scenes.csv", dtype=str)
    only_8band = scenes[scenes["bands"] == "8"].assign(band_names="b1|b2|b3|b4|b5|b6|b7|b8")
    for sub in ("images", "labels"):
        (tmp_path / "raw" / sub).mkdir(parents=True)
    for _, row in only_8band.iterrows():
        for col in ("image", "labels"):
            shutil.copy(spacenet_root / row[col], tmp_path / "raw" / row[col])
    only_8band.to_csv(tmp_path / "raw" / "scenes.csv", index=False)
    proc = cli("evaluate", "--bundle", str(exported["bundle"]), "--data", str(tmp_path / "raw"), "--out", "acc",
               cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no scene can be evaluated with this bundle" in proc.stderr and "lacks ['red', 'green', 'blue']" in proc.stderr
