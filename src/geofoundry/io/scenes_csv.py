"""``scenes.csv`` parsed and checked row by row (RAW_LAYOUT.md): every problem is named with its line and scene."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..errors import GeofoundryError
from .inputs import decode, read_bytes

REQUIRED_COLUMNS = (
    "scene_id", "image", "labels", "site", "country", "sensor", "gsd_m", "acquired", "crs",
    "width", "height", "bands", "dtype", "band_names", "nodata", "group",
)
# Read as text (a number is checked and converted by check_table, so that errors quote the cell as written).
TEXT_COLUMNS = ("scene_id", "group", "site", "acquired", "nodata", "gsd_m", "width", "height", "bands", "dtype",
                "band_names")
SCENE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # outputs are named <scene_id>.tif / .gpkg
MAX_REPORTED = 10


def read_table(path: Path) -> pd.DataFrame:
    """The rows of ``path`` (UTF-8, comma-separated, a header of unique names), the text columns as strings."""
    text = decode(read_bytes(path, "scene table"), path, "scene table")
    if not text.strip():
        raise GeofoundryError(f"{path}: empty; it needs a header line and one row per scene (see RAW_LAYOUT.md)")
    header = next(csv.reader(io.StringIO(text)), [])
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise GeofoundryError(f"{path}:1: columns {duplicated} appear more than once in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hint = next((f"; the header looks separated by {d!r}, scenes.csv is comma-separated" for d in ";\t|"
                     if len(header) == 1 and d in header[0]), "")
        raise GeofoundryError(f"{path}: missing columns {missing}{hint}")
    try:
        return pd.read_csv(io.StringIO(text), dtype={c: str for c in TEXT_COLUMNS})
    except (pd.errors.ParserError, ValueError) as e:
        raise GeofoundryError(f"{path}: not a readable CSV table ({' '.join(str(e).split())})") from None


def _inside(rel: str) -> bool:
    """A relative path that stays inside the folder it is relative to (checked on the text, not resolved: DVC may
    link files out of its cache)."""
    p = PurePosixPath(rel.replace("\\", "/"))
    return bool(rel) and not p.is_absolute() and not re.match(r"^[A-Za-z]:", rel) and \
        not os.path.normpath(p).startswith("..")


def _number(value, kind: type) -> float | int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(number) or number <= 0 or (kind is int and not number.is_integer()):
        return None
    return kind(number)


def row_problems(row: pd.Series) -> list[str]:
    """What is wrong with one row of scenes.csv (empty when nothing is)."""
    row = row.fillna("")
    out = []
    sid = row["scene_id"]
    if not isinstance(sid, str) or not SCENE_ID.match(sid):
        out.append(f"scene_id {sid!r} must be a plain file name (letters, digits, '.', '_', '-')")
    for col in ("image", "labels"):
        if not isinstance(row[col], str) or not _inside(row[col]):
            out.append(f"{col} {row[col]!r} must be a path inside the dataset folder")
    if _number(row["gsd_m"], float) is None:
        out.append(f"gsd_m {row['gsd_m']!r} is not a positive number")
    for col in ("width", "height", "bands"):
        if _number(row[col], int) is None:
            out.append(f"{col} {row[col]!r} is not a positive whole number")
    try:
        dtype_ok = np.issubdtype(np.dtype(str(row["dtype"])), np.number)
    except TypeError:
        dtype_ok = False
    if not dtype_ok:
        out.append(f"dtype {row['dtype']!r} is not a numeric data type (uint8, uint16, float32, ...)")
    names = str(row["band_names"]).split("|") if isinstance(row["band_names"], str) else []
    if not names or not all(n.strip() for n in names) or len(set(names)) != len(names):
        out.append(f"band_names {row['band_names']!r} must be distinct names separated by '|'")
    nodata = row["nodata"]
    if isinstance(nodata, str) and nodata.strip():
        try:
            float(nodata)
        except ValueError:
            out.append(f"nodata {nodata!r} is not a number (leave it empty when the file has a mask)")
    acquired = row["acquired"]
    if isinstance(acquired, str) and acquired.strip() and pd.isna(pd.to_datetime(acquired, errors="coerce",
                                                                                 format="ISO8601")):
        out.append(f"acquired {acquired!r} is not an ISO date (YYYY-MM-DD) or empty")
    return out


def check_table(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``df`` with typed ``gsd_m``, ``width``, ``height``, ``bands``; every bad row refused in one error."""
    if df.empty:
        raise GeofoundryError(f"{path}: lists no scene (a header and no rows)")
    problems = []
    for i, row in df.iterrows():
        for problem in row_problems(row):
            problems.append(f"line {i + 2} (scene {row['scene_id']!r}): {problem}")
    dup = df.loc[df["scene_id"].duplicated(), "scene_id"].tolist()
    if dup:
        problems.append(f"duplicate scene_id {dup}")
    if problems:
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise GeofoundryError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:MAX_REPORTED])
                              + more)
    return df.assign(gsd_m=df["gsd_m"].astype(float), **{c: df[c].astype(float).astype(int)
                                                        for c in ("width", "height", "bands")})
