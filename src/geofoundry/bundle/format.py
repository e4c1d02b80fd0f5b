"""``bundle.json``: the version of the bundle format, and the upgraders that read older versions.

A bundle without ``bundle.json`` (written before format versions existed) is version 1. ``UPGRADERS[n]`` turns
the files of a version-n bundle into those of version n + 1 in memory; the delivered files are never rewritten, so
their checksums still hold. A bundle newer than this reader is refused with the geofoundry version it needs.

Changing what the reader parses (a file, a key of ``bundle.json``, ``stats.json``, ``classes.json``,
``predict.yaml`` or ``postprocess.yaml``) means: raise :data:`FORMAT_VERSION`, set :data:`NEEDS_GEOFOUNDRY` to
the release that first reads it, add ``UPGRADERS[old]`` and a fixture ``tests/fixtures/bundle_v<new>/`` made by
``tests/fixtures/make_bundle.py``; older fixtures stay and keep being read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..errors import GeofoundryError

FORMAT_FILE = "bundle.json"
FORMAT = "geofoundry-bundle"
FORMAT_VERSION = 4
NEEDS_GEOFOUNDRY = "0.1.0"  # the first geofoundry release whose reader reads FORMAT_VERSION
INPUT, OUTPUT = "raw", "probabilities"  # model.onnx's tensors


def descriptor() -> dict:
    """``bundle.json`` as this geofoundry writes it."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "needs_geofoundry": NEEDS_GEOFOUNDRY,
            "written_by": f"geofoundry {__version__}"}


def _parse(data: bytes, path: Path) -> dict:
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GeofoundryError(f"{path}: not valid JSON ({e})") from None
    fields = info if isinstance(info, dict) else {}
    version = fields.get("format_version")
    if isinstance(version, str) and re.fullmatch(r"[1-9][0-9]*", version):
        version = int(version)
    if fields.get("format") != FORMAT or not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise GeofoundryError(f"{path}: needs \"format\": \"{FORMAT}\" and a positive integer \"format_version\", "
                              f"got {info}")
    return {**fields, "format_version": version}


def _refuse_newer(info: dict, root: Path) -> None:
    if info["format_version"] > FORMAT_VERSION:
        needs = info.get("needs_geofoundry")
        needs = f">= {needs}" if isinstance(needs, str) and needs else "newer than this one"
        raise GeofoundryError(f"{root}: bundle format {info['format_version']} needs geofoundry {needs} (this is "
                              f"{__version__}, which reads bundle formats 1 to {FORMAT_VERSION})")


def refuse_newer(root: Path) -> None:
    """Refuse a bundle whose ``bundle.json`` declares a format newer than this reader, before any other check (a
    newer format may hold files this reader does not know). Only refuses: nothing read here is used."""
    path = root / FORMAT_FILE
    if path.is_symlink() or not path.is_file():
        return  # left to the manifest checks
    try:
        info = _parse(path.read_bytes(), path)
    except GeofoundryError:
        return  # reported after the checksums, from the verified bytes
    _refuse_newer(info, root)


def format_version(files: dict[str, bytes], root: Path) -> int:
    """The format version of a bundle's verified files: ``bundle.json``'s, or 1 without it."""
    if FORMAT_FILE not in files:
        return 1
    info = _parse(files[FORMAT_FILE], root / FORMAT_FILE)
    _refuse_newer(info, root)
    return info["format_version"]


def _json(files: dict[str, bytes], name: str, root: Path):
    try:
        return json.loads(files[name].decode("utf-8"))
    except KeyError:
        raise GeofoundryError(f"{root}: required file {name} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GeofoundryError(f"{root / name}: not valid JSON ({e})") from None


def _v1_to_v2(files: dict[str, bytes], root: Path) -> dict[str, bytes]:
    """Version 2 adds ``bundle.json`` and always lists ``auxiliary`` classes in ``classes.json``: version 1
    bundles written before border/contact models have no such key, and no auxiliary classes. (Upgraders name
    files and values literally: they describe fixed versions.)"""
    classes = _json(files, "classes.json", root)
    if isinstance(classes, dict) and "auxiliary" not in classes:
        classes = {**classes, "auxiliary": []}
    info = {"format": FORMAT, "format_version": 2, "needs_geofoundry": "0.1.0", "written_by": "unknown (format 1)"}
    return {**files, "classes.json": json.dumps(classes, indent=2).encode() + b"\n",
            "bundle.json": json.dumps(info, indent=2).encode() + b"\n"}


def _v2_to_v3(files: dict[str, bytes], root: Path) -> dict[str, bytes]:
    """Version 3 may hold a compiled package, ``model.pt2`` with its build record ``compiled.json``: version 2
    bundles hold none, so only ``bundle.json`` changes."""
    info = {**_json(files, "bundle.json", root), "format_version": 3, "needs_geofoundry": "0.1.0"}
    return {**files, "bundle.json": json.dumps(info, indent=2).encode() + b"\n"}


def _v3_to_v4(files: dict[str, bytes], root: Path) -> dict[str, bytes]:
    """Version 4 adds ``mlm.json``, the model as a STAC MLM item, made from the bundle's own contracts."""
    import yaml

    from .mlm import mlm_json

    info = {**_json(files, "bundle.json", root), "format_version": 4, "needs_geofoundry": "0.1.0"}
    predict = yaml.safe_load(files["predict.yaml"].decode("utf-8"))
    made = mlm_json(_json(files, "stats.json", root), _json(files, "classes.json", root), predict,
                    _json(files, "card.json", root))
    return {**files, "bundle.json": json.dumps(info, indent=2).encode() + b"\n", "mlm.json": made.encode()}


UPGRADERS: dict[int, Callable[[dict[str, bytes], Path], dict[str, bytes]]] = {1: _v1_to_v2, 2: _v2_to_v3,
                                                                               3: _v3_to_v4}


def upgrade(files: dict[str, bytes], version: int, root: Path) -> dict[str, bytes]:
    """The files of a version-``version`` bundle as the current version reads them (in memory)."""
    for v in range(version, FORMAT_VERSION):
        files = UPGRADERS[v](files, root)
    return files
