"""The postprocess stage: params and paths → ``geofoundry.postprocess.run`` on the test maps."""

from __future__ import annotations

from pathlib import Path

from ... import postprocess
from ...config import Params
from ...io.inputs import read_json
from ..paths import Paths

NAME = "postprocess"


def run(p: Params, d: Paths):
    classes = read_json(d.selection / "classes.json", "classes (select stage)")["names"][1:]
    return postprocess.run(p.postprocess, d.predictions / "test", d.vectors, classes)


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.vectors,)
