"""The evaluate stage: params and paths → ``geofoundry.evaluate.run``; the headline figures printed at the end."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ... import evaluate
from ...config import Params
from ..paths import Paths
from ..runner import console

NAME = "evaluate"


def headline_table(report: dict) -> Table:
    """The headline figures of an evaluation report: object P/R/F1/AP and pixel IoU/F1, overall and per site."""
    table = Table("", "object P", "object R", "object F1", "object AP", "pixel IoU", "pixel F1",
                  title="evaluation (test area)", title_justify="left")
    rows = {"all": report, **{f"site {s}": m for s, m in report["per_site"].items()}}
    for name, m in rows.items():
        o, px = m["object"], m["pixel"]
        table.add_row(name, *(f"{v:.3f}" for v in (o["precision"], o["recall"], o["f1"], o["ap"], px["iou"],
                                                   px["f1"])), style="bold" if name == "all" else None)
    table.caption = (f"{report['object']['tp']} TP, {report['object']['fp']} FP, {report['object']['fn']} FN objects "
                     f"in {report['n_scenes']} scene(s)")
    return table


def run(p: Params, d: Paths):
    report = evaluate.run(p.evaluate, d.selection, d.predictions / "test", d.vectors, d.metrics / "evaluate.json",
                          d.plots / "evaluate", d.reports / "evaluate.json")
    console.print(headline_table(report))
    return report


def outputs(d: Paths) -> tuple[Path, ...]:
    """The folders this stage writes (its outs in dvc.yaml)."""
    return (d.metrics, d.plots / "evaluate", d.reports)
