"""Read a raw dataset laid out as in docs/RAW_LAYOUT.md: ``scenes.csv``, ``images/``, ``labels/``."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import rasterio
import shapely
from rasterio.windows import Window

from ..config import check_class_path
from ..errors import GeofoundryError
from .inputs import read_json
from .labelled import COLUMN as LABELLED, PATH_COLUMN as LABELLED_PATH
from .labels import label_features
from .raster import has_rpc_only
from .read_errors import raster_errors
from .scenes_csv import check_table, read_table


def load_scenes(root: str | Path) -> pd.DataFrame:
    """Return ``scenes.csv`` with absolute ``image_path``/``labels_path`` columns, checked against the disk."""
    root = Path(root)
    csv = root / "scenes.csv"
    if not root.is_dir():
        raise GeofoundryError(f"{root}: raw dataset folder not found (run `dvc pull` to fetch the default data)")
    if not csv.is_file():
        raise GeofoundryError(f"{csv}: missing; a raw dataset needs scenes.csv (see docs/RAW_LAYOUT.md; `geofoundry ingest` writes one)")
    df = check_table(read_table(csv), csv)
    df["image_path"] = [str((root / p).resolve()) for p in df["image"]]
    df["labels_path"] = [str((root / p).resolve()) for p in df["labels"]]
    checked = [("image_path", "image"), ("labels_path", "label file")]
    if LABELLED in df.columns:  # optional: where the labels are complete (empty: wherever the image is valid)
        df[LABELLED_PATH] = [str((root / p).resolve()) if isinstance(p, str) and p.strip() else ""
                             for p in df[LABELLED]]
        checked.append((LABELLED_PATH, "labelled area"))
    for row in df.itertuples():
        for col, what in checked:
            if getattr(row, col) and not Path(getattr(row, col)).is_file():
                why = "is a folder" if Path(getattr(row, col)).is_dir() else "does not exist"
                raise GeofoundryError(f"{csv}: scene {row.scene_id!r} lists {what} {getattr(row, col)} which {why}")
    df["band_names"] = df["band_names"].astype(str)
    df["acquired"] = df["acquired"].fillna("")
    return df


def check_image(row: pd.Series) -> None:
    """Fail clearly when an image cannot be read or disagrees with its ``scenes.csv`` row.

    Opens the file, checks CRS (or RPCs), size, band count, dtype and band names, and reads the last block of every
    band and of the mask, which a truncated copy lacks.
    """
    path = row["image_path"]
    with raster_errors(path), rasterio.open(path) as ds:
        found = {"width": ds.width, "height": ds.height, "bands": ds.count, "dtype": ds.dtypes[0]}
        if ds.crs is None and not has_rpc_only(ds):
            raise GeofoundryError(f"{path}: image has no CRS; georeference it (e.g. gdal_edit.py -a_srs)")
        bh, bw = ds.block_shapes[0]
        last = Window((ds.width - 1) // bw * bw, (ds.height - 1) // bh * bh, 1, 1)
        ds.read(window=last)
        ds.dataset_mask(window=last)
    for key, value in found.items():
        if str(row[key]) != str(value):
            raise GeofoundryError(f"{path}: scenes.csv says {key}={row[key]} but the file has {key}={value}")
    names = str(row["band_names"]).split("|")
    if len(names) != found["bands"]:
        raise GeofoundryError(f"{path}: scenes.csv band_names lists {len(names)} names for {found['bands']} bands")


def read_labels(path: str | Path) -> gpd.GeoDataFrame:
    """Read a label GeoJSON (EPSG:4326): features that cannot be footprints are refused (:mod:`.labels`); repair
    invalid polygons with a warning; check ``class`` and ``class_path``."""
    path = Path(path)
    gdf = label_features(path, read_json(path, "labels"))
    if gdf.empty:
        return gpd.GeoDataFrame({"class": [], "class_path": []}, geometry=[], crs="EPSG:4326")
    try:
        gdf["class_path"] = [check_class_path(p) for p in gdf["class_path"]]
    except ValueError as e:
        raise GeofoundryError(f"{path}: {e}") from None
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        warnings.warn(f"{path}: repaired {int(invalid.sum())} invalid polygon(s) with make_valid", stacklevel=2)
        fixed = shapely.make_valid(gdf.geometry.values[invalid.values])
        gdf.loc[invalid, "geometry"] = [_polygonal(g) for g in fixed]
    return gdf[~gdf.geometry.is_empty].reset_index(drop=True)


def _polygonal(geom):
    """Keep the polygonal part of a ``make_valid`` result."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def select_classes(labels: gpd.GeoDataFrame, prefixes: list[str]) -> gpd.GeoDataFrame:
    """Keep labels under one of the class path prefixes and add ``class_id`` (1-based, order of ``prefixes``)."""
    class_id = [0] * len(labels)
    for i, path in enumerate(labels["class_path"]):
        for k, prefix in enumerate(prefixes, start=1):
            if path == prefix or path.startswith(prefix + "/"):
                class_id[i] = k
                break
    out = labels.assign(class_id=class_id)
    return out[out["class_id"] > 0].reset_index(drop=True)


def class_levels(path: str) -> list[str]:
    """Every prefix of a class path, general to specific: ``a/b/c`` → ``[a, a/b, a/b/c]``."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
