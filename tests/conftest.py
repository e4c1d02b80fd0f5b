"""Shared fixtures: real datasets from ../shared/data, offline switches, small real subsets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

for _key in ("NO_ALBUMENTATIONS_UPDATE", "HF_HUB_OFFLINE", "DVC_NO_ANALYTICS"):
    os.environ.setdefault(_key, "1")

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
