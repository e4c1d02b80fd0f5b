"""``geofoundry rps --apply``: the best point of the search (``reports/rps.json``) written into params.yaml
(comments, order and layout kept: :mod:`geofoundry.io.yaml_edit`), and the ``dvc exp run -S`` line that sets the
same values."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ..config import Params
from ..errors import GeofoundryError
from ..io.atomic import write_text
from ..io.inputs import read_json, read_text, validated
from ..io.yaml_edit import flow, plain, round_trip
from ..postprocess import build_chain
from .settings import SettingsError
from .space import check_space


def _set(doc: Any, path: list[str | int], value: Any, stale: str) -> str | None:
    """Set ``value`` at ``path`` of the document: None when it is there already, else ``"+"`` when the key was
    added (`dvc exp run -S` adds a key with ``+key=value``) or ``""``."""
    node = doc
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise GeofoundryError(stale)
            node = node[part]
            continue
        if part not in node and not isinstance(path[i + 1], int) and path[0] != "postprocess":
            node[part] = flow({})  # a section left to its defaults
        elif part not in node:
            raise GeofoundryError(stale)
        if node[part] is None:  # an op written without parameters: `watershed:`
            node[part] = flow({})
        node = node[part]
    key = path[-1]
    if key in node and node[key] == value and isinstance(node[key], bool) == isinstance(value, bool):
        return None
    added = "" if key in node else "+"
    was_flow = node.fa.flow_style() or not node
    node[key] = value
    if was_flow:
        node.fa.set_flow_style()
    return added


def _path(override: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in override.split(".")]


def check_params(data: Any, source: str) -> Params:
    """``data`` as the params loader takes it, with ``rps.settings`` and the chain also checked against the
    operations (as the rps and postprocess stages check them)."""
    params = validated(Params, data, source)
    try:
        check_space(params.rps, params.postprocess.steps, params.predict)
    except SettingsError as e:
        raise GeofoundryError("\n".join([f"{source}: invalid parameters", *e.lines()])) from None
    try:
        build_chain(params.postprocess.steps)
    except GeofoundryError as e:
        raise GeofoundryError(f"{source}: {e}") from None
    return params


def apply_best(params_path: Path, report_path: Path) -> list[str]:
    """Write the best point of ``report_path`` (the search's summary) into ``params_path``; return the ``dvc exp
    run -S`` overrides of the values changed (none when params.yaml holds the point already). Nothing is written
    when a value no longer fits params.yaml."""
    if not report_path.is_file():
        raise GeofoundryError(f"{report_path}: missing; run the search first (`dvc repro rps` or `geofoundry rps`)")
    best = read_json(report_path, "running point search report").get("best")
    if not (isinstance(best, dict) and isinstance(best.get("set"), list) and isinstance(best.get("settings"), dict)):
        raise GeofoundryError(f"{report_path}: no best point (best.set, best.settings); run the search again")
    stale = (f"{report_path} does not fit {params_path} (postprocess.steps or predict.ensemble changed since the "
             "search): run it again (`dvc repro rps`)")
    changed: list[str] = []

    def edit(doc: Any) -> None:
        for override, value in zip(best["set"], best["settings"].values()):
            added = _set(doc, _path(override.partition("=")[0]), value, stale)
            if added is not None:
                changed.append(added + override)
        check_params(plain(doc), f"{params_path} with {report_path}'s best point")

    text = round_trip(read_text(params_path, "parameters"), edit)
    if changed:
        write_text(params_path, text)
    return changed


def exp_run_line(overrides: list[str]) -> str:
    """The ``dvc exp run`` command that sets the same values."""
    return " ".join(["dvc exp run", *(f"-S {shlex.quote(o)}" for o in overrides)])
