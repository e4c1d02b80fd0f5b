"""The selection query from the command line: options as ``select:`` changes, merged and validated, previewed, or
written back to params.yaml (:mod:`geofoundry.select.changes`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Params
from ..errors import GeofoundryError
from ..select.changes import apply_changes, write_select
from .params import load_params

__all__ = ["overrides", "parse_range", "preview", "query_config", "write_select"]


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


def query_config(params_path: Path, changes: dict[str, Any]) -> tuple[Params, dict]:
    """params.yaml with ``changes`` merged into ``select:``, validated; also the merged ``select:`` mapping."""
    params = load_params(params_path)
    select, merged = apply_changes(params.select, changes)
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
