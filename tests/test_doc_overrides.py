"""Every `dvc exp run -S …` line in the docs applies through DVC's own override parser and gives valid params."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest
from dvc.utils.hydra import apply_overrides, get_hydra_sweeps

from geofoundry.pipeline.params import load_params

from .project import ROOT

DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md")),
        "ensemble/README.md", "init/README.md", "splits/README.md"]


def documented_overrides() -> list[tuple[str, list[str]]]:
    """(file:line, the -S values) of each `dvc exp run` command in a code block, continuation lines joined."""
    found = []
    for name in DOCS:
        lines = (ROOT / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("dvc exp run"):
                continue
            command, j = line, i
            while command.rstrip().endswith("\\"):
                j += 1
                command = command.rstrip()[:-1] + " " + lines[j]
            command = re.sub(r"<[^>]*>", "", command.split(" #")[0])  # placeholders like <the recipe's -S options>
            words = shlex.split(command)
            found.append((f"{name}:{i + 1}", [words[k + 1] for k, w in enumerate(words) if w == "-S"]))
    return found


OVERRIDES = [case for case in documented_overrides() if case[1]]


def test_the_docs_have_overrides():
    assert len(OVERRIDES) >= 8 and any(len(s) > 5 for _, s in OVERRIDES)


@pytest.mark.parametrize("where, overrides", OVERRIDES, ids=[w for w, _ in OVERRIDES])
def test_documented_override_applies(tmp_path, where, overrides):
    """Sweeps (`choice(a,b)`, for `--queue`) give one experiment per combination, as DVC expands them."""
    for i, combination in enumerate(get_hydra_sweeps({"params.yaml": overrides})):
        params = tmp_path / str(i) / "params.yaml"
        params.parent.mkdir()
        shutil.copy(ROOT / "params.yaml", params)
        apply_overrides(str(params), combination["params.yaml"])  # what `dvc exp run -S` does to params.yaml
        load_params(params)
