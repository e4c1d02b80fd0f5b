"""The scenes of an archive run: files, folders, list files, globs, GDAL virtual paths and STAC ItemCollections,
each with the name its outputs take and, from STAC, its input item."""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GeofoundryError
from ..io.inputs import decode

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
LIST_SUFFIXES = (".txt", ".lst")
STAC_SUFFIXES = (".json", ".geojson")
SCHEMES = {"http://": "/vsicurl/http://", "https://": "/vsicurl/https://", "s3://": "/vsis3/", "gs://": "/vsigs/",
           "az://": "/vsiaz/"}
IMAGE_KEYS = ("image", "visual", "data")  # asset keys tried first in a STAC item


@dataclass(frozen=True)
class Scene:
    """One scene: ``name`` (outputs ``<name>.tif``, ``<name>.gpkg``), ``path`` (what GDAL opens) and, from a STAC
    ItemCollection, the input ``item`` (a dict)."""

    name: str
    path: str
    item: dict | None = field(default=None, compare=False)

    @property
    def remote(self) -> bool:
        return self.path.startswith("/vsi")


def gdal_path(href: str, base: Path | None = None) -> str:
    """An href as GDAL opens it: URLs of http(s), s3, gs and az become ``/vsicurl/``, ``/vsis3/``, ``/vsigs/`` and
    ``/vsiaz/`` paths; a relative href is taken from ``base``."""
    for scheme, prefix in SCHEMES.items():
        if href.startswith(scheme):
            return prefix + href[len(scheme):]
    href = href.removeprefix("file://")
    if href.startswith("/vsi") or Path(href).is_absolute() or base is None:
        return href
    return str(base / href)


def _name(path: str) -> str:
    return re.sub(r"\.[^./]*$", "", path.rstrip("/").rsplit("/", 1)[-1])


def _image_asset(item: dict, where: str) -> str:
    assets = item.get("assets") or {}
    for key in IMAGE_KEYS:
        if key in assets:
            return assets[key]["href"]
    for asset in assets.values():
        if "image/tiff" in asset.get("type", "") or "data" in asset.get("roles", []):
            return asset["href"]
    raise GeofoundryError(f"{where}: item {item.get('id')!r} has no image asset (keys {', '.join(IMAGE_KEYS)}, or one "
                          f"of type image/tiff or role data); its assets: {sorted(assets)}")


def stac_scenes(path: Path) -> list[Scene]:
    """The scenes of a STAC ItemCollection (or one Item) file, read with pystac."""
    import pystac

    try:
        data = json.loads(decode(path.read_bytes(), path, "STAC file"))
        items = (pystac.ItemCollection.from_dict(data).items if data.get("type") == "FeatureCollection"
                 else [pystac.Item.from_dict(data)])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, pystac.STACError,
            pystac.STACTypeError) as e:
        raise GeofoundryError(f"{path}: not a STAC ItemCollection or Item ({type(e).__name__}: {e})") from None
    return [Scene(item.id, gdal_path(_image_asset(item.to_dict(), str(path)), path.parent), item.to_dict())
            for item in items]


def list_scenes(path: Path) -> list[Scene]:
    """One scene per line of a list file (``#`` comments and blank lines skipped; relative to the file)."""
    lines = decode(path.read_bytes(), path, "scene list").splitlines()
    return [_scene(gdal_path(line.strip(), path.parent)) for line in lines if line.strip() and
            not line.lstrip().startswith("#")]


def _scene(path: str) -> Scene:
    return Scene(_name(path), path)


def find_scenes(inputs: list[str]) -> list[Scene]:
    """Every scene the inputs name, in order; refuses two scenes of one name (their outputs would collide)."""
    scenes: list[Scene] = []
    for given in map(str, inputs):
        local = Path(given)
        if any(given.startswith(s) for s in (*SCHEMES, "/vsi")):
            scenes.append(_scene(gdal_path(given)))
        elif local.is_dir():
            found = sorted(p for p in local.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
            if not found:
                raise GeofoundryError(f"{local}: no scene ({', '.join(RASTER_SUFFIXES)}) in this folder")
            scenes += [_scene(str(p)) for p in found]
        elif local.suffix.lower() in LIST_SUFFIXES and local.is_file():
            scenes += list_scenes(local)
        elif local.suffix.lower() in STAC_SUFFIXES and local.is_file():
            scenes += stac_scenes(local)
        elif glob.has_magic(given):
            found = sorted(glob.glob(given, recursive=True))
            if not found:
                raise GeofoundryError(f"{given}: scene not found, and no file matches it as a pattern")
            scenes += [_scene(p) for p in found]
        elif local.is_file():
            scenes.append(_scene(given))
        else:
            raise GeofoundryError(f"{given}: scene not found (a file, folder, list file, glob, STAC ItemCollection, "
                                  "URL or GDAL /vsi… path)")
    names = [s.name for s in scenes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise GeofoundryError(f"scenes named alike (outputs are named after them): {', '.join(twice)}")
    if not scenes:
        raise GeofoundryError("no scene to predict")
    return scenes
