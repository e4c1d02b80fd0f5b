"""Faults in a raw dataset's scenes.csv, through the real select stage: one ``error (select): data/raw/scenes.csv…``
message that names the line and the scene, exit status 1, nothing written. Repairs (a byte-order mark, Windows line
ends) are accepted as they are."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pandas as pd
import pytest

from geofoundry.io.raw import load_scenes

from .conftest import assert_error, link_tree, replace_bytes, run_stage, snapshot

CSV = "data/raw/scenes.csv"


def _cell(line: int, column: str, value: str):
    """A case that sets one cell of scenes.csv (``line`` as in the file: 2 is the first scene)."""
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[line - 2, column] = value
        return df
    return edit


class Text(NamedTuple):
    """A case that edits scenes.csv as text (written back as UTF-8, lone surrogates as the bytes they stand for)."""

    edit: Callable[[str], str]


PROBLEMS = ("gsd_m 'x' is not a positive number", "width '-1' is not a positive whole number",
            "height 'y' is not a positive whole number", "bands '0' is not a positive whole number",
            "dtype 'rgb' is not a numeric data type (uint8, uint16, float32, ...)",
            "nodata '?' is not a number (leave it empty when the file has a mask)")
MANY = [f"line {n} (scene '{s}'): {p}" for n, s in ((2, "kampala_ug_z19"), (3, "nairobi_ke_z19")) for p in PROBLEMS]


# (name, edit: a DataFrame edit, a Text edit, bytes (the whole file) or None (no file), expected message)
CASES = [
    ("missing file", None, f"{CSV}: missing; a raw dataset needs scenes.csv (see docs/RAW_LAYOUT.md; `geofoundry ingest` writes one)"),
    ("empty file", b"", f"{CSV}: empty; it needs a header line and one row per scene (see RAW_LAYOUT.md)"),
    ("header only", Text(lambda t: t.splitlines(keepends=True)[0]), f"{CSV}: lists no scene (a header and no rows)"),
    ("not UTF-8", Text(lambda t: t.replace("kampala_ug,UG", "kampala_ug,U\udce9")),
     f"{CSV}:2: the scene table file is not UTF-8 text (byte 0xe9); save it as UTF-8"),
    ("missing column", lambda df: df.drop(columns=["gsd_m"]), f"{CSV}: missing columns ['gsd_m']"),
    ("semicolon-separated", Text(lambda t: t.replace(",", ";")),
     f"{CSV}: missing columns ['scene_id', 'image', 'labels', 'site', 'country', 'sensor', 'gsd_m', 'acquired', "
     "'crs', 'width', 'height', 'bands', 'dtype', 'band_names', 'nodata', 'group']; the header looks separated by "
     "';', scenes.csv is comma-separated"),
    ("column twice", Text(lambda t: t.replace("scene_id,image,", "scene_id,gsd_m,", 1)),
     f"{CSV}:1: columns ['gsd_m'] appear more than once in the header"),
    ("ragged row", Text(lambda t: t.replace("nairobi_ke,19", "nairobi_ke,19,extra", 1)),
     f"{CSV}: not a readable CSV table (Error tokenizing data. C error: Expected 25 fields in line 3, saw 26)"),
    ("unterminated quote", Text(lambda t: t.replace("kampala_ug_z19,", '"kampala_ug_z19,', 1)),
     f"{CSV}: not a readable CSV table (Error tokenizing data. C error: EOF inside string starting at row 1)"),
    ("duplicate scene_id", _cell(3, "scene_id", "kampala_ug_z19"),
     f"{CSV}: 1 problem(s):\n  duplicate scene_id ['kampala_ug_z19']"),
    ("scene_id that is a path", _cell(2, "scene_id", "../outside"),
     f"{CSV}: 1 problem(s):\n  line 2 (scene '../outside'): scene_id '../outside' must be a plain file name "
     "(letters, digits, '.', '_', '-')"),
    ("absolute image path", _cell(2, "image", "/etc/passwd"),
     f"{CSV}: 1 problem(s):\n  line 2 (scene 'kampala_ug_z19'): image '/etc/passwd' must be a path inside the "
     "dataset folder"),
    ("labels outside the dataset", _cell(3, "labels", "labels/../../../secret.geojson"),
     f"{CSV}: 1 problem(s):\n  line 3 (scene 'nairobi_ke_z19'): labels 'labels/../../../secret.geojson' must be a "
     "path inside the dataset folder"),
    ("gsd_m not a number", _cell(2, "gsd_m", "0,3"),
     f"{CSV}: 1 problem(s):\n  line 2 (scene 'kampala_ug_z19'): gsd_m '0,3' is not a positive number"),
    ("gsd_m zero", _cell(3, "gsd_m", "0"),
     f"{CSV}: 1 problem(s):\n  line 3 (scene 'nairobi_ke_z19'): gsd_m '0' is not a positive number"),
    ("width not whole", _cell(2, "width", "2304.5"),
     f"{CSV}: 1 problem(s):\n  line 2 (scene 'kampala_ug_z19'): width '2304.5' is not a positive whole number"),
    ("unknown dtype", _cell(2, "dtype", "uint7"),
     f"{CSV}: 1 problem(s):\n  line 2 (scene 'kampala_ug_z19'): dtype 'uint7' is not a numeric data type "
     "(uint8, uint16, float32, ...)"),
    ("band named twice", _cell(2, "band_names", "red|red|blue"),
     f"{CSV}: 1 problem(s):\n  line 2 (scene 'kampala_ug_z19'): band_names 'red|red|blue' must be distinct names "
     "separated by '|'"),
    ("nodata not a number", _cell(3, "nodata", "none"),
     f"{CSV}: 1 problem(s):\n  line 3 (scene 'nairobi_ke_z19'): nodata 'none' is not a number (leave it empty when "
     "the file has a mask)"),
    ("acquired not a date", _cell(2, "acquired", "last spring"),
     f"{CSV}: 1 problem(s):\n  line 2 (scene 'kampala_ug_z19'): acquired 'last spring' is not an ISO date "
     "(YYYY-MM-DD) or empty"),
    ("many problems", lambda df: df.assign(gsd_m="x", width="-1", height="y", bands="0", dtype="rgb", nodata="?"),
     f"{CSV}: 12 problem(s):\n  " + "\n  ".join(MANY[:10]) + "\n  ... and 2 more"),
    ("image is a folder", _cell(2, "image", "images"),
     None),  # the message names the absolute path: checked below
]


def _break(raw, edit) -> None:
    csv = raw / "scenes.csv"
    if edit is None:
        csv.unlink()
    elif isinstance(edit, bytes):
        replace_bytes(csv, edit)
    elif isinstance(edit, Text):
        replace_bytes(csv, edit.edit(csv.read_text()).encode("utf-8", "surrogateescape"))
    else:
        frame = edit(pd.read_csv(csv, dtype=str, keep_default_na=False))
        replace_bytes(csv, frame.to_csv(index=False).encode())


@pytest.mark.parametrize("name, edit, message", CASES, ids=[c[0] for c in CASES])
def test_bad_scene_table_stops_select(raw_workspace, name, edit, message):
    raw = raw_workspace / "data" / "raw"
    _break(raw, edit)
    before = snapshot(raw_workspace)
    proc = run_stage(raw_workspace, "select")
    if message is None:
        message = (f"{CSV}: scene 'kampala_ug_z19' lists image {(raw / 'images').resolve()} which is a folder")
    assert_error(proc, "select", message)
    assert snapshot(raw_workspace) == before


@pytest.mark.parametrize("repair", ["byte-order mark", "windows line ends"])
def test_harmless_encodings_are_read_as_they_are(small_raw, tmp_path, repair):
    """Repairs: what Excel and Windows editors write (a UTF-8 byte-order mark, CR LF line ends) reads the same."""
    raw = link_tree(small_raw, tmp_path / "raw")
    data = (small_raw / "scenes.csv").read_bytes()
    replace_bytes(raw / "scenes.csv", b"\xef\xbb\xbf" + data if repair == "byte-order mark"
                  else data.replace(b"\n", b"\r\n"))
    absolute = ["image_path", "labels_path"]
    pd.testing.assert_frame_equal(load_scenes(raw).drop(columns=absolute), load_scenes(small_raw).drop(columns=absolute))
