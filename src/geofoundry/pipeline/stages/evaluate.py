"""The evaluate stage: params and paths → ``geofoundry.evaluate.run``."""

from __future__ import annotations

from ... import evaluate
from ...config import Params
from ..paths import Paths

NAME = "evaluate"


def run(p: Params, d: Paths):
    return evaluate.run(p.evaluate, d.selection, d.predictions, d.vectors, d.metrics / "evaluate.json",
                        d.plots / "evaluate")
