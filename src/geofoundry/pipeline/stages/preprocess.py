"""The preprocess stage: params and paths → ``geofoundry.preprocess.run``."""

from __future__ import annotations

from pathlib import Path

from ... import preprocess
from ...config import Params
from ..paths import Paths

NAME = "preprocess"


def run(p: Params, d: Paths):
    return preprocess.run(p.preprocess, d.selection, d.chips)


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.chips,)
