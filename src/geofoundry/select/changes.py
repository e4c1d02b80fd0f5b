"""Changes to the selection query: merged into ``select:`` and validated, and written back into params.yaml with
its comments and layout kept (what ``geofoundry select --write`` and the dashboard's "use this selection" do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import SelectConfig, format_validation_error
from ..errors import GeofoundryError

NESTED = ("geofence", "split")  # sections whose keys are merged one by one


def merge(base: dict, changes: dict) -> dict:
    """``changes`` over the ``select:`` mapping ``base``; ``geofence`` and ``split`` are merged key by key."""
    out = dict(base)
    for k, v in changes.items():
        out[k] = merge(out.get(k) or {}, v) if isinstance(v, dict) and k in NESTED else v
    return out


def apply_changes(cfg: SelectConfig, changes: dict[str, Any]) -> tuple[SelectConfig, dict]:
    """``cfg`` with ``changes`` merged in, validated (errors name each bad key); also the merged mapping."""
    merged = merge(cfg.model_dump(mode="json", exclude_defaults=False), changes)
    try:
        return SelectConfig.model_validate(merged), merged
    except ValidationError as e:
        raise GeofoundryError(format_validation_error(e, "select query")) from None


def render_select(text: str, changes: dict[str, Any]) -> str:
    """The params.yaml ``text`` with ``changes`` written into its ``select:`` section, comments and layout kept."""
    from ..io.yaml_edit import flow, round_trip

    def edit(doc: Any) -> None:
        section = doc.setdefault("select", {})
        for key, value in changes.items():
            if isinstance(value, dict) and key in NESTED and key in section:
                section[key].update(flow(value))
            else:
                section[key] = flow(value)

    return round_trip(text, edit)


def write_select(params_path: Path, changes: dict[str, Any]) -> None:
    """Write ``changes`` into the ``select:`` section of params.yaml, keeping comments and key order."""
    from ..io.atomic import write_text

    write_text(params_path, render_select(params_path.read_text(), changes))
