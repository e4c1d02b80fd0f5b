"""Bad input through the real stage scripts: a clear message and exit status 1, never a traceback."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from .faults.conftest import assert_clean_error, run_stage
from .project import ROOT


@pytest.fixture
def repo(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_missing_raw_data(repo):
    assert_clean_error(run_stage(repo, "select"), "data/raw: raw dataset folder not found", "dvc pull")


def test_scene_file_missing(repo, small_raw):
    shutil.copytree(small_raw, repo / "data/raw")
    (repo / "data/raw/images/nairobi_ke_z19.tif").unlink()
    assert_clean_error(run_stage(repo, "select"), "nairobi_ke_z19", "does not exist")


def test_scenes_csv_disagrees_with_file(repo, small_raw):
    shutil.copytree(small_raw, repo / "data/raw")
    scenes = pd.read_csv(repo / "data/raw/scenes.csv", dtype=str)
    scenes.loc[0, "bands"] = "4"
    scenes.to_csv(repo / "data/raw/scenes.csv", index=False)
    assert_clean_error(run_stage(repo, "select"), "scenes.csv says bands=4 but the file has bands=3")


def test_ensemble_member_outside_the_tracked_folder(repo):
    """A member DVC would not see change (the predict stage depends on ensemble/ only) is refused at once."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["predict"]["ensemble"] = [{"path": "models/other.pt"}]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert_clean_error(run_stage(repo, "predict"), "predict.ensemble: models/other.pt is not in ensemble/",
                       "dvc add")


def test_init_from_outside_the_tracked_folder(repo):
    """Weights DVC would not see change (the train stage depends on init/ only) are refused at once."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["init_from"] = "models/best.pt"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert_clean_error(run_stage(repo, "train"), "train.init_from: models/best.pt is not in init/", "dvc add")


def test_pinned_split_outside_the_tracked_folder(repo):
    """A blocks file DVC would not see change (the select stage depends on splits/ only) is refused at once."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["select"]["split"]["pinned"] = "data/selection/blocks.parquet"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert_clean_error(run_stage(repo, "select"),
                       "select.split.pinned: data/selection/blocks.parquet is not in splits/", "dvc add")


def test_unknown_arch(repo, chips_dir):
    shutil.copytree(chips_dir, repo / "data/chips")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["arch"] = "unett"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert_clean_error(run_stage(repo, "train"), "unknown arch 'unett'", "Did you mean unet")


def test_params_typo(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["predict"]["tiles"] = 256
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert_clean_error(run_stage(repo, "predict"), "predict.tiles: unknown key")


def test_empty_selection_names_the_filter(repo, small_raw):
    shutil.copytree(small_raw, repo / "data/raw")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["select"]["sites"] = ["atlantis"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert_clean_error(run_stage(repo, "select"), "select.sites removed all 2 remaining scenes")


def test_rps_without_validation_maps(repo, selection_dir):
    shutil.copytree(selection_dir, repo / "data/selection")
    assert_clean_error(run_stage(repo, "rps"), "error (rps): data/predictions/val: no validation maps",
                       "dvc repro predict")


def test_rps_setting_of_a_missing_step(repo):
    """Every stage refuses an rps setting that names no step of postprocess.steps, when params load."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["rps"]["settings"] = {"postprocess.watershed.min_distance_px": [2, 3]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert_clean_error(run_stage(repo, "select"),
                       "rps.settings.postprocess.watershed.min_distance_px: postprocess.steps has no 'watershed' step")
