"""The predict stage: params and paths → ``geofoundry.predict.run``."""

from __future__ import annotations

from pathlib import Path

from ... import predict
from ...config import Params
from ..paths import Paths

NAME = "predict"


def run(p: Params, d: Paths):
    for member in p.predict.ensemble:
        d.in_stage_folder(member.path, d.ensemble, "predict.ensemble", "predict",
                          f"dvc add {d.ensemble}/<name>.pt versions it")
    return predict.run(p.predict, d.selection, d.chips, d.models / "best.pt", d.predictions,
                       d.metrics / "predict.json")


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.predictions, d.metrics)
