"""Shared fixtures: real datasets from ../shared/data, offline switches, small real subsets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

for _key in ("NO_ALBUMENTATIONS_UPDATE", "HF_HUB_OFFLINE", "DVC_NO_ANALYTICS"):
    os.environ.setdefault(_key, "1")

# Each parametrized case in these files starts the CLI or a stage in a process of its own (seconds each on two
# cores): the fast tier (`-m "not slow"`) keeps the first case of each test, `make test` runs them all.
SAMPLED = ("tests/faults/", "tests/test_models_presets.py")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "oam_buildings_eafrica_scenes"
SPACENET = SHARED / "data" / "spacenet1_rio_sample"


def shared_dataset(path: Path) -> Path:
    """``path`` (a dataset of ../shared/data), or the test fails saying what is missing: never a silent skip."""
    if not (path / "scenes.csv").is_file():
        pytest.fail(f"{path} is missing: the tests need the shared datasets in ../shared/data beside the checkout "
                    f"(CI clones the project next to them)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def dev_root() -> Path:
    return shared_dataset(DEV)


@pytest.fixture(scope="session")
def spacenet_root() -> Path:
    return shared_dataset(SPACENET)


def copy_subset(src: Path, dst: Path, scene_ids: list[str]) -> Path:
    """A raw dataset with only ``scene_ids`` of ``src`` (same layout, real files)."""
    scenes = pd.read_csv(src / "scenes.csv", dtype=str)
    keep = scenes[scenes["scene_id"].isin(scene_ids)]
    (dst / "images").mkdir(parents=True)
    (dst / "labels").mkdir()
    for _, row in keep.iterrows():
        shutil.copy(src / row["image"], dst / row["image"])
        shutil.copy(src / row["labels"], dst / row["labels"])
    keep.to_csv(dst / "scenes.csv", index=False)
    if (src / "DATASET.md").exists():
        shutil.copy(src / "DATASET.md", dst / "DATASET.md")
    return dst


@pytest.fixture(scope="session")
def small_raw(tmp_path_factory, dev_root) -> Path:
    """Two real 0.3 m DEV scenes (Kampala, Nairobi)."""
    return copy_subset(dev_root, tmp_path_factory.mktemp("raw") / "raw", ["kampala_ug_z19", "nairobi_ke_z19"])


@pytest.fixture(scope="session")
def selection_dir(tmp_path_factory, small_raw) -> Path:
    from geofoundry import select
    from geofoundry.config import SelectConfig

    out = tmp_path_factory.mktemp("selection")
    select.run(SelectConfig(gsd_range=(0.25, 0.35)), small_raw, out / "selection", out / "select.json")
    return out / "selection"


@pytest.fixture(scope="session")
def chips_dir(tmp_path_factory, selection_dir) -> Path:
    from geofoundry import preprocess
    from geofoundry.config import ChipConfig, PreprocessConfig

    out = tmp_path_factory.mktemp("chips") / "chips"
    preprocess.run(PreprocessConfig(chip=ChipConfig(size=128, stride=128)), selection_dir, out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, chips_dir) -> Path:
    """best.pt of a real (briefly trained) Unet on real chips."""
    from geofoundry import train
    from geofoundry.config import TrainConfig

    out = tmp_path_factory.mktemp("train")
    cfg = TrainConfig(epochs=1, samples_per_epoch=8, positive_fraction=0.5, batch_size=4, threads=1)
    train.run(cfg, "unet", chips_dir, out / "models", out / "dvclive")
    return out / "models" / "best.pt"


@pytest.fixture(scope="session")
def exported(tmp_path_factory, chips_dir, tiny_model, small_raw, selection_dir) -> dict:
    """The export stage on the tiny model (tiles of 256): ONNX, metrics and the delivery bundle."""
    from geofoundry import export
    from geofoundry.config import ExportConfig, PredictConfig
    from geofoundry.pipeline.params import load_params

    out = tmp_path_factory.mktemp("export")
    params = load_params(ROOT / "params.yaml").model_copy(
        update={"export": ExportConfig(parity_chips=4), "predict": PredictConfig(tile=256, overlap=32)})
    prov = export.Provenance(params, out, small_raw, {"select": selection_dir.parent / "select.json",
                                                      "train": tiny_model.parents[1] / "dvclive" / "metrics.json",
                                                      "evaluate": out / "metrics" / "evaluate.json"})
    metrics = export.run(params.export, chips_dir, tiny_model, out / "model.onnx", out / "export.json",
                         out / "bundle", prov)
    return {"dir": out, "metrics": metrics, "params": params, "bundle": out / "bundle", "prov": prov}


@pytest.fixture(scope="session")
def bundle(exported) -> Path:
    """The delivery bundle of :func:`exported` (never changed by a test: copy it to break it)."""
    return exported["bundle"]


@pytest.fixture(scope="session")
def compare_repo(tmp_path_factory, small_raw) -> dict:
    """A DVC repository with two tiny real experiments (tests/compare_repo.py; minutes: for slow tests only), built
    once for all pytest-xdist workers; each has its own copy."""
    from .compare_repo import built_once

    return built_once(tmp_path_factory, small_raw)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every case after the first of each parametrized test in :data:`SAMPLED` files slow."""
    seen: set[str] = set()
    for item in items:
        if not item.nodeid.startswith(SAMPLED) or not hasattr(item, "callspec"):
            continue
        test = item.nodeid.split("[", 1)[0]
        if test in seen:
            item.add_marker(pytest.mark.slow)
        seen.add(test)
