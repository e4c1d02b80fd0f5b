"""The export stage: params and paths → ``geofoundry.export.run``."""

from __future__ import annotations

from pathlib import Path

from ...config import Params
from ..paths import Paths

NAME = "export"


def run(p: Params, d: Paths):
    from ... import export  # here: params.yaml is read and checked before torch loads (bad params fail in a second)

    prov = export.Provenance(p, d.root, d.raw, {"select": d.reports / "select.json", "train": d.live / "metrics.json",
                                                "evaluate": d.metrics / "evaluate.json"})
    return export.run(p.export, d.chips, d.models / "best.pt", d.onnx, d.metrics / "export.json",
                      d / "export/bundle", prov)


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.onnx.parent, d.metrics)
