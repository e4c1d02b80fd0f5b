"""The rps stage: params and paths → ``geofoundry.rps.run`` on the validation maps."""

from __future__ import annotations

from pathlib import Path

from ...config import Params
from ...rps.run import run as search
from ..paths import Paths

NAME = "rps"


def run(p: Params, d: Paths):
    for member in p.predict.ensemble:
        d.in_stage_folder(member.path, d.ensemble, "predict.ensemble", "rps",
                          f"dvc add {d.ensemble}/<name>.pt versions it")
    return search(p.rps, p.postprocess, p.predict, p.evaluate, d.selection, d.predictions / "val", d.chips,
                  d.models / "best.pt", d.rps_cache, d.metrics / "rps.json", d.reports / "rps.json",
                  d.plots / "rps")


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml, and what it keeps between runs)."""
    return (d.metrics, d.reports, d.plots / "rps", d.rps_cache)
