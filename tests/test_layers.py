"""The package layers (pyproject's import-linter contract) and dvc.yaml's code deps follow the imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .dvc_deps import ROOT, code_deps, stage_scripts

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_layers_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("stage", sorted(stage_scripts()))
def test_stage_code_deps_are_its_import_closure(stage):
    listed = [d if isinstance(d, str) else next(iter(d)) for d in STAGES[stage]["deps"]]
    code = [d for d in listed if d.split("/")[0] in ("stages", "src")]
    expected = code_deps(stage_scripts()[stage])
    assert sorted(code) == sorted(expected), (
        f"dvc.yaml stage {stage}: code deps differ from its import closure "
        f"(missing {sorted(set(expected) - set(code))}, extra {sorted(set(code) - set(expected))}); "
        "`python -m tests.dvc_deps` prints the list")


def test_every_stage_script_is_a_stage():
    assert {p.name for p in (ROOT / "stages").glob("*.py")} == {p.name for p in stage_scripts().values()}
