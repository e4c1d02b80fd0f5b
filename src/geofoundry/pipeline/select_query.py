"""The selection query from the command line: merge options into ``select:``, validate, write back to params.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import Params, SelectConfig
from ..errors import GeofoundryError
from .params import format_validation_error, load_params


def parse_range(text: str, what: str) -> list[float]:
    """``"lo:hi"`` → [lo, hi]; an empty side means 0 (low) or 1 (high)."""
    lo, sep, hi = text.partition(":")
    if not sep:
        raise GeofoundryError(f"{what}: expected MIN:MAX, got {text!r}")
    try:
        return [float(lo) if lo else 0.0, float(hi) if hi else 1.0]
    except ValueError:
        raise GeofoundryError(f"{what}: expected numbers in MIN:MAX, got {text!r}") from None


def overrides(classes=None, sites=None, sensors=None, gsd=None, dates=None, contexts=None, include=None,
              exclude=None, min_valid_frac=None, block_size=None, seed=None) -> dict[str, Any]:
    """The ``select:`` keys that the given command-line options set (None = not given)."""
    out: dict[str, Any] = {}
    for key, value in (("classes", classes), ("sites", sites), ("sensors", sensors)):
        if value:
            out[key] = list(value)
    if gsd:
        out["gsd_range"] = parse_range(gsd, "--gsd")
    if dates:
        first, _, last = dates.partition(":")
        out["dates"] = [first, last] if first or last else []
    if contexts:
        out["contexts"] = {}
        for item in contexts:
            name, eq, rng = item.partition("=")
            if not eq:
                raise GeofoundryError(f"--context: expected NAME=MIN:MAX, got {item!r}")
            out["contexts"][name] = parse_range(rng, f"--context {name}")
    fence = {k: v for k, v in (("include", include), ("exclude", exclude)) if v is not None}
    if fence:
        out["geofence"] = {k: (v or None) for k, v in fence.items()}
    if min_valid_frac is not None:
        out["min_valid_frac"] = min_valid_frac
    split = {k: v for k, v in (("block_size_m", block_size), ("seed", seed)) if v is not None}
    if split:
        out["split"] = split
    return out


def _merge(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) and k in ("geofence", "split") else v
    return out


def query_config(params_path: Path, changes: dict[str, Any]) -> tuple[Params, dict]:
    """params.yaml with ``changes`` merged into ``select:``, validated; also the merged ``select:`` mapping."""
    params = load_params(params_path)
    merged = _merge(params.select.model_dump(mode="json", exclude_defaults=False), changes)
    try:
        select = SelectConfig.model_validate(merged)
    except ValidationError as e:
        raise GeofoundryError(format_validation_error(e, "select query")) from None
    return params.model_copy(update={"select": select}), merged


def preview(params_path: Path, changes: dict[str, Any]) -> dict:
    """Run the selection with ``changes`` into a temporary folder; return its metrics (nothing else is written)."""
    import tempfile

    from ..select.run import run
    from .paths import Paths, pinned_path

    params, _ = query_config(params_path, changes)
    paths = Paths(params_path.parent)
    with tempfile.TemporaryDirectory() as tmp:
        return run(params.select, paths.raw, Path(tmp) / "selection", Path(tmp) / "select.json",
                   pinned_path(params.select.split, paths))


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


def write_select(params_path: Path, changes: dict[str, Any]) -> None:
    """Write ``changes`` into the ``select:`` section of params.yaml, keeping comments and key order."""
    from ruamel.yaml import YAML

    from ..io.atomic import atomic_path

    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(params_path.read_text())
    section = doc.setdefault("select", {})
    for key, value in changes.items():
        if isinstance(value, dict) and key in ("geofence", "split") and key in section:
            section[key].update(_flow(value))
        else:
            section[key] = _flow(value)
    with atomic_path(params_path) as tmp, tmp.open("w") as fh:
        yaml.dump(doc, fh)
