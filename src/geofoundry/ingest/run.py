"""``geofoundry ingest``: scenes and a labels file → a raw-layout dataset (scenes.csv, images/, labels/, areas/,
DATASET.md), written in a temporary folder beside the output and renamed onto it when complete."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import rasterio

from .. import __version__
from ..errors import GeofoundryError
from ..io.raster import valid_footprint
from ..progress import track
from .labels import read_vector, touching, with_classes, write_geojson
from .scenes import describe, find_scenes, scene_id, write_geotiff

log = logging.getLogger(__name__)
COLUMNS = ("scene_id", "image", "labels", "site", "country", "sensor", "gsd_m", "acquired", "crs", "width", "height",
           "bands", "dtype", "band_names", "nodata", "group", "labelled_area", "n_labels", "source")


@dataclass(frozen=True)
class IngestOptions:
    """What the files cannot tell: how to read the labels and what to record about the scenes."""

    class_column: str | None = None  # the labels' column that holds class names or paths
    class_path: str | None = None  # or one class path for every label
    layer: str | None = None  # the labels file's layer, when it has several
    bands: list[str] | None = None  # band names of every scene, when the files do not name them
    site: str | None = None  # site of every scene (default: the scene id)
    country: str = ""
    sensor: str = "unknown"
    group: str | None = None  # scenes over the same ground share a group (default: the site)
    acquired: str | None = None  # ISO date of every scene (default: the TIFF date tag, else unknown)
    labelled_area: Path | None = None  # polygons where the labels are complete (default: everywhere)
    licence: str | None = None  # licence and attribution, quoted in DATASET.md and the model card
    force: bool = False  # replace an existing output folder


def ingest(sources: list[Path], labels_path: Path, out: Path, opts: IngestOptions = IngestOptions()) -> dict:
    """Write the dataset at ``out``; return a summary. Every input is checked before anything is written."""
    out = Path(out)
    files = find_scenes(sources)
    ids = [scene_id(f) for f in files]
    if dup := sorted(k for k, n in Counter(ids).items() if n > 1):
        raise GeofoundryError(f"scene ids {dup} repeat (they are the file names): rename the files")
    facts = [describe(f, opts.bands) for f in files]
    labels = with_classes(read_vector(labels_path, opts.layer), labels_path, opts.class_column, opts.class_path)
    area = read_vector(opts.labelled_area) if opts.labelled_area else None
    if out.exists() and any(out.iterdir()) and not opts.force:
        raise GeofoundryError(f"{out}: exists and is not empty; choose another folder or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".ingest", dir=out.parent))
    try:
        rows, placed = _write(files, ids, facts, labels, area, tmp, opts)
        if not placed:
            raise GeofoundryError(f"{labels_path}: none of its {len(labels)} labels lies on a valid pixel of the "
                                  f"scenes (labels CRS {labels.crs.to_string()}): wrong file, scenes or CRS?")
        if missed := len(labels) - len(placed):
            warnings.warn(f"{labels_path}: {missed} of {len(labels)} labels lie on no scene's valid area; left out",
                          stacklevel=2)
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(tmp / "scenes.csv", index=False)
        (tmp / "DATASET.md").write_text(dataset_md(out.name, rows, labels_path, labels, opts))
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("ingest: %d scenes, %d labels → %s", len(rows), len(placed), out)
    return {"scenes": len(rows), "labels": len(placed), "classes": dict(Counter(labels["class_path"])),
            "out": str(out)}


def _write(files, ids, facts, labels, area, tmp: Path, opts: IngestOptions) -> tuple[list[dict], set[int]]:
    """Every scene's GeoTIFF, labels and labelled area under ``tmp``; the scenes.csv rows and the labels placed."""
    for sub in ["images", "labels"] + (["areas"] if area is not None else []):
        (tmp / sub).mkdir()
    rows, placed = [], set()
    for path, sid, fact in track(list(zip(files, ids, facts)), "ingest: scenes"):
        image = f"images/{sid}.tif"
        write_geotiff(path, tmp / image, fact["band_names"].split("|"))
        with rasterio.open(tmp / image) as ds:
            footprint, crs = valid_footprint(ds), ds.crs
        labelled_area = ""
        if area is not None:
            inside = touching(area, footprint, crs)
            if not len(inside):
                warnings.warn(f"{path}: lies outside the labelled area; left out", stacklevel=2)
                (tmp / image).unlink()
                continue
            labelled_area = f"areas/{sid}.geojson"
            write_geojson(area.iloc[inside], tmp / labelled_area)
        on_scene = touching(labels, footprint, crs)
        placed.update(on_scene.tolist())
        write_geojson(labels.iloc[on_scene], tmp / f"labels/{sid}.geojson")
        site = opts.site or sid
        rows.append({**fact, "scene_id": sid, "image": image, "labels": f"labels/{sid}.geojson", "site": site,
                     "country": opts.country, "sensor": opts.sensor, "group": opts.group or site,
                     "acquired": opts.acquired or fact["acquired"], "labelled_area": labelled_area,
                     "n_labels": len(on_scene), "source": str(path)})
    if not rows:
        raise GeofoundryError("no scene lies in the labelled area")
    return rows, placed


def _replace(tmp: Path, out: Path) -> None:
    """Rename the complete ``tmp`` onto ``out`` (an existing ``out`` is removed only once ``tmp`` is in place)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


def dataset_md(name: str, rows: list[dict], labels_path: Path, labels, opts: IngestOptions) -> str:
    """DATASET.md: where the data came from and what it holds; the licence section only when one was given."""
    classes = "\n".join(f"  - `{k}`: {n}" for k, n in sorted(Counter(labels["class_path"]).items()))
    scenes = "\n".join(f"  - `{r['scene_id']}` ← `{r['source']}`: {r['width']} × {r['height']} px, bands "
                       f"{r['band_names']}, {r['dtype']}, {r['gsd_m']} m, {r['crs']}, {r['n_labels']} labels"
                       for r in rows)
    how = f"column `{opts.class_column}`" if opts.class_column else (
        f"`--class {opts.class_path}`" if opts.class_path else "its class column")
    text = f"""# {name}

Ingested on {date.today().isoformat()} by geofoundry {__version__} (`geofoundry ingest`), laid out as in
docs/RAW_LAYOUT.md.

## Contents
- Scenes ({len(rows)}):
{scenes}
- Labels: `{labels_path}` ({labels.crs.to_string()}), classes from {how}:
{classes}
- Labelled area: {f"`{opts.labelled_area}`" if opts.labelled_area else "the whole valid area of every scene"}
"""
    if opts.licence:
        text += f"\n## Licence and attribution\n{opts.licence}\n"
    return text
