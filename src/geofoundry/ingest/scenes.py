"""Scenes in: find the raster files, name their bands, measure their GSD, and write each as the tiled, compressed
GeoTIFF with a validity mask or nodata value that the raw layout asks for."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioIOError

from ..errors import GeofoundryError
from ..io.units import ground_step_m

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
DTYPES = ("uint8", "uint16", "float32")  # the raw layout's
COLOUR_NAMES = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue",
                ColorInterp.gray: "gray"}
BLOCK = 512


def find_scenes(sources: list[Path]) -> list[Path]:
    """Raster files from files, folders (their raster files, sorted, not recursive) and ``.txt`` lists (one path a
    line, relative to the list's folder)."""
    found: list[Path] = []
    for src in map(Path, sources):
        if src.is_dir():
            found += sorted(p for p in src.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
        elif src.suffix.lower() == ".txt" and src.is_file():
            lines = [ln.strip() for ln in src.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            found += [(src.parent / ln) for ln in lines]
        elif src.is_file():
            found.append(src)
        else:
            raise GeofoundryError(f"{src}: no such scene file, folder or list")
    if not found:
        raise GeofoundryError(f"no raster file ({', '.join(RASTER_SUFFIXES)}) in {[str(s) for s in sources]}")
    return found


def scene_id(path: Path) -> str:
    """The file name without its suffix, with characters other than letters, digits, ``-`` and ``_`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem).strip("_") or "scene"


def _alpha(ds) -> int | None:
    """The 1-based index of an alpha band (the validity of the other bands), if the last band is one."""
    return ds.count if ds.count > 1 and ds.colorinterp[-1] == ColorInterp.alpha else None


def band_names(ds, given: list[str] | None) -> list[str]:
    """``given`` (--bands), else the file's band descriptions, else its colour interpretation (red, green, blue)."""
    count = ds.count - (1 if _alpha(ds) else 0)
    if given:
        if len(given) != count:
            raise GeofoundryError(f"{ds.name}: --bands names {len(given)} bands {given} but the scene has {count}")
        return given
    descriptions = [d.strip().lower() if d else "" for d in ds.descriptions[:count]]
    if all(descriptions) and len(set(descriptions)) == count:
        return descriptions
    colours = [COLOUR_NAMES.get(c) for c in ds.colorinterp[:count]]
    if all(colours) and len(set(colours)) == count:
        return colours
    raise GeofoundryError(f"{ds.name}: its {count} bands have no names (descriptions or colour interpretation); "
                          f"name them with --bands {','.join(['NAME'] * count)} (e.g. red,green,blue,nir)")


def acquired(ds) -> str:
    """The acquisition date from the TIFF date tag (``YYYY:MM:DD hh:mm:ss``) as ISO, else ''."""
    stamp = ds.tags().get("TIFFTAG_DATETIME", "")
    m = re.match(r"(\d{4})[:-](\d{2})[:-](\d{2})", stamp)
    return "-".join(m.groups()) if m else ""


def describe(path: Path, bands: list[str] | None) -> dict:
    """The scenes.csv facts of a raster file (before conversion): size, bands, dtype, CRS, GSD, nodata, date."""
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None or ds.transform.is_identity:
                raise GeofoundryError(f"{path}: no CRS or geotransform; georeference it (e.g. gdal_edit.py -a_srs "
                                      "EPSG:XXXX -a_ullr ...) or orthorectify it first")
            dtype = ds.dtypes[0]
            if dtype not in DTYPES or len(set(ds.dtypes)) > 1:
                raise GeofoundryError(f"{path}: {'/'.join(sorted(set(ds.dtypes)))} pixels; the raw layout takes "
                                      f"{', '.join(DTYPES)}, the same for every band (convert it with "
                                      "gdal_translate -ot UInt16, or -ot Byte -scale for 8 bits)")
            names = band_names(ds, bands)
            x, y = ds.transform @ (ds.width / 2, ds.height / 2)
            return {"width": ds.width, "height": ds.height, "bands": len(names), "dtype": dtype,
                    "crs": ds.crs.to_string(), "band_names": "|".join(names),
                    "gsd_m": round(ground_step_m(ds.crs, x, y, ds.transform.a, ds.transform.e), 5),
                    "nodata": "" if ds.nodata is None else f"{ds.nodata:g}", "acquired": acquired(ds)}
    except RasterioIOError as e:
        raise GeofoundryError(f"{path}: cannot read the scene ({e})") from None


def _ready(ds) -> bool:
    """Whether a file is already as the raw layout wants it: a tiled, compressed GeoTIFF without alpha band."""
    return (ds.driver == "GTiff" and ds.profile.get("tiled", False) and ds.compression is not None
            and _alpha(ds) is None)


def write_geotiff(src_path: Path, dst: Path, names: list[str]) -> None:
    """``dst``: the scene as the raw layout's GeoTIFF. A tiled, compressed GeoTIFF is copied as it is; anything
    else (JPEG2000, VRT, strips, uncompressed) is written in 512² DEFLATE tiles, by blocks, with its bands named,
    its nodata value kept, and its validity (internal mask or alpha band) as an internal mask."""
    with rasterio.open(src_path) as src:
        if _ready(src):
            shutil.copyfile(src_path, dst)
            return
        alpha = _alpha(src)
        count = src.count - (1 if alpha else 0)
        masked = alpha is not None or (src.nodata is None and MaskFlags.per_dataset in src.mask_flag_enums[0])
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": count,
                   "dtype": src.dtypes[0], "crs": src.crs, "transform": src.transform, "nodata": src.nodata,
                   "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate",
                   "predictor": 3 if src.dtypes[0] == "float32" else 2, "bigtiff": "IF_SAFER"}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(dst, "w", **profile) as out:
            out.descriptions = names
            for _, window in out.block_windows(1):
                out.write(src.read(list(range(1, count + 1)), window=window), window=window)
                if masked:
                    valid = src.read(alpha, window=window) if alpha else src.dataset_mask(window=window)
                    out.write_mask(np.asarray(valid > 0), window=window)
