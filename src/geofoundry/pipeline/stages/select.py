"""The select stage: params and paths → ``geofoundry.select.run``."""

from __future__ import annotations

from pathlib import Path

from ... import select
from ...config import Params
from ..paths import Paths, pinned_path

NAME = "select"


def run(p: Params, d: Paths):
    return select.run(p.select, d.raw, d.selection, d.reports / "select.json", pinned_path(p.select.split, d))


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.selection, d.reports)
