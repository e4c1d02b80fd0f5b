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


def _flow(value: Any) -> Any:
    """Lists in flow style (``[a, b]``), as params.yaml writes them."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        return CommentedMap({k: _flow(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq([_flow(v) for v in value])
        seq.fa.set_flow_style()
        return seq
    return value


def render_select(text: str, changes: dict[str, Any]) -> str:
    """The params.yaml ``text`` with ``changes`` written into its ``select:`` section, comments and key order kept."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(text)
    section = doc.setdefault("select", {})
    for key, value in changes.items():
        if isinstance(value, dict) and key in NESTED and key in section:
            section[key].update(_flow(value))
        else:
            section[key] = _flow(value)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def write_select(params_path: Path, changes: dict[str, Any]) -> None:
    """Write ``changes`` into the ``select:`` section of params.yaml, keeping comments and key order."""
    from ..io.atomic import write_text

    write_text(params_path, render_select(params_path.read_text(), changes))
