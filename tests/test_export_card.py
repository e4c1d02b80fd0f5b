"""Model card provenance: git revision (dirty or not), the data version from data.dvc, licences from DATASET.md."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from geofoundry.export.card import NO_LICENCE, data_version, git_revision, licence_section

from .project import ROOT, env


def test_card_provenance_from_a_git_repository(tmp_path):
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env(), check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_revision(tmp_path) == rev
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")  # rewritten by dvc repro itself: not dirty
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluate.json").write_text("{}")
    assert git_revision(tmp_path) == rev
    shutil.copy(ROOT / "data.dvc", tmp_path / "data.dvc")
    assert git_revision(tmp_path) == f"{rev}-dirty"
    assert data_version(tmp_path)["md5"] == yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]["md5"]


def test_licences_are_quoted_from_dataset_md(dev_root, spacenet_root, tmp_path):
    title, text = licence_section(dev_root / "DATASET.md")
    assert title.startswith("oam_buildings_eafrica_scenes")
    assert "Imagery © OpenAerialMap / Open Imagery Network contributors, CC-BY 4.0" in text
    assert "Labels © OpenStreetMap contributors, ODbL 1.0" in text and "## Contents" not in text
    assert "CC BY-SA 4.0" in licence_section(spacenet_root / "DATASET.md")[1]
    assert licence_section(tmp_path / "DATASET.md") == (None, NO_LICENCE)
