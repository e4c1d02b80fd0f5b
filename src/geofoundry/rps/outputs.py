"""What the rps stage writes: every trial as a table, the Pareto front, F1 against each setting (plots), the whole
summary (``reports/rps.json``: the best point and the current one, with their overrides, counts and the work done)
and its headline (``metrics/rps.json``: the best point's settings and validation figures, few keys, so that
``dvc exp show`` stays narrow)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

from ..io.atomic import atomic_path, write_json, write_text
from .settings import Setting

FIGURES = ("precision", "recall", "f1", "ap", "tp", "fp", "fn")
HEADLINE = ("precision", "recall", "f1", "ap")
TRIALS, PARETO, BY_SETTING = "trials.csv", "pareto.csv", "f1_by_setting"


def pareto_front(rows: Sequence[dict]) -> list[dict]:
    """The rows that no other row beats on precision and recall together (one per pair of figures), by recall."""
    front, seen = [], set()
    for row in sorted(rows, key=lambda r: (-r["recall"], -r["precision"], r["trial"])):
        pair = (row["recall"], row["precision"])
        if pair in seen or (front and front[-1]["precision"] >= row["precision"]):
            continue
        seen.add(pair)
        front.append(row)
    return sorted(front, key=lambda r: r["recall"])


def _csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _file_name(key: str) -> str:
    return re.sub(r"[^\w.-]", "_", key) + ".json"


def by_setting(rows: Sequence[dict], setting: Setting) -> list[dict]:
    """F1 of every trial against the setting's value; a list's values are plotted at their place in the list
    (``choice`` names them)."""
    if not setting.categorical or all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      for v in setting.choices):
        return [{"value": r[setting.key], "f1": r["f1"], "trial": r["trial"]} for r in rows]
    place = {v: i for i, v in enumerate(setting.choices)}
    return [{"value": place.get(r[setting.key], len(place)), "choice": str(r[setting.key]), "f1": r["f1"],
             "trial": r["trial"]} for r in rows]


def headline(summary: dict) -> dict:
    """The figures experiments are compared by: the best point's settings and validation P/R/F1/AP, and the
    validation F1 of the current params."""
    best = summary["best"]
    return {"best": {**{k: best["val"][k] for k in HEADLINE}, "settings": best["settings"]},
            "params": {"f1": summary["params"]["val"]["f1"]}}


def write_outputs(rows: Sequence[dict], settings: Sequence[Setting], summary: dict, metrics_path: Path,
                  report_path: Path, plots_dir: Path) -> None:
    keys = [s.key for s in settings]
    columns = ["trial", "source", *keys, *FIGURES, "objective", "feasible", "pareto", "cached", "seconds"]
    front = {r["trial"] for r in pareto_front(rows)}
    table = [{**r, "pareto": int(r["trial"] in front)} for r in rows]
    write_text(plots_dir / TRIALS, _csv(table, columns))
    write_text(plots_dir / PARETO, _csv([r for r in table if r["pareto"]], columns))
    with atomic_path(plots_dir / BY_SETTING) as tmp:
        tmp.mkdir()
        for s in settings:
            write_json(tmp / _file_name(s.key), by_setting(rows, s))
    write_json(report_path, summary)
    write_json(metrics_path, headline(summary))
