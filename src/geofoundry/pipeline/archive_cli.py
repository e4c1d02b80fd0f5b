"""``geofoundry predict --bundle`` over an archive: which inputs make an archive run, and how one ends (a line per
failed scene, exit status 1 when any failed)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from .reporting import console

ARCHIVE_SUFFIXES = (".txt", ".lst", ".json", ".geojson")


def is_archive(inputs: list[str]) -> bool:
    """Whether ``inputs`` make an archive run: a folder, list file, glob, STAC file, URL or GDAL /vsi… path, or a
    launch by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return True
    return any("://" in s or s.startswith("/vsi") or any(c in s for c in "*?[") or Path(s).is_dir()
               or Path(s).suffix.lower() in ARCHIVE_SUFFIXES for s in inputs)


def archive_summary(result: dict, out: Path) -> None:
    """Print the run's outcome on rank 0 (the others print nothing); exit with status 1 when a scene failed."""
    failed = result["failed"]
    if result["rank"] == 0:
        counts: dict[str, int] = {}
        for s in result["scenes"]:
            counts[s["status"]] = counts.get(s["status"], 0) + 1
        ran = result["engines"][0]["engine"]
        console.print(f"{len(result['scenes'])} scene(s) on {result['world']} process(es): "
                      + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                      + f"; {result['objects']} objects ({result['duplicates_removed']} duplicates of overlapping "
                        f"scenes removed) → {out}/objects.gpkg, {out}/stac/catalog.json ({ran} engine)",
                      highlight=False)
        for s in failed:
            console.print(f"failed: {s['name']} ({s['source']}): {s['error']}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)
