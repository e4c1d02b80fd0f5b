"""The predict stage: each scene's validation and test areas through the delivered model, into probability COGs."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from rasterio.features import geometry_mask
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform

from ..config import PredictConfig
from ..errors import GeofoundryError
from ..io.atomic import write_json
from ..io.debris import outputs_in
from ..io.geometry import reproject
from ..io.raster import IN_MEMORY_DATASETS, ModelGrid, band_indexes, bounded_gdal_cache, open_model_grid
from ..io.tiling import block_window, starts, tiles_reaching
from ..models.input_spec import InputSpec
from ..progress import task
from .arrays import TileModel
from .ranks import Group, balance, join, launched, leave, pin
from .sliding import PixelFlag, Region, Sliding, predict_region
from .writer import ProbabilityWriter

log = logging.getLogger(__name__)
# the PixelFlag bits as uint8 scalars, for masking flag planes in place
VALID, INSIDE, WANTED = (np.uint8(f) for f in (PixelFlag.VALID, PixelFlag.INSIDE, PixelFlag.WANTED))
READERS = min(8, max(2, (os.cpu_count() or 2) // 2))  # reading threads, each with its own dataset handle
GDAL_CACHE_MB = 128  # the source block rows that consecutive strips share (sizes compared in BENCHMARKS.md)
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


@contextlib.contextmanager
def memory_returned_to_os(enabled: bool) -> Iterator[None]:
    """glibc: serve allocations of 1 MB and more with mmap, so freed strip-sized arrays go back to the OS at once;
    at the end, trim the heaps (a few ms), so the next scene starts from the memory this one started from.

    Otherwise glibc raises that threshold after the first large free, and the strips' arrays, freed by other threads
    than the ones that made them, stay in per-thread heaps (hundreds of MB of resident memory on wide scenes); and
    GDAL's block cache, freed when the scene closes, stays in them too. Only for a model on the GPU: on the CPU its
    activations would pay fresh page faults on every forward, which slows inference.
    """
    trim = None
    if enabled:
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(M_MMAP_THRESHOLD, 2**20)
            trim = libc.malloc_trim
    try:
        yield
    finally:
        if trim is not None:
            trim(0)


def predict_scene(image_path: str, band_names: list[str], gsd_m: float, area_3857: shapely.Geometry | None,
                  spec: InputSpec, model: TileModel, cfg: PredictConfig, out_path: Path,
                  classes: list[str] | None = None) -> bool:
    """Predict the part of one scene inside ``area_3857`` (None = the whole scene, cut to the tiles that reach its
    valid blocks: :func:`valid_region`); False when nothing is valid.
    A scene of another dtype than the model's training data is refused (:meth:`InputSpec.dtype_refusal`).

    ``classes``: the model's output classes, background first (default: the chip classes of ``spec``); one band
    ``p(<class>)`` per non-background class.

    ``READERS`` lanes read strips by column pieces (each lane with its own dataset handle), the calling thread drives
    the model, and two threads (with a pool compressing tiles) write finished rows, so reading, inference and
    writing overlap.
    """
    indexes = band_indexes(image_path, band_names, spec.bands)
    with memory_returned_to_os(getattr(model.arrays, "cuda", False)), bounded_gdal_cache(GDAL_CACHE_MB), \
            contextlib.ExitStack() as stack:
        handles = [stack.enter_context(open_model_grid(image_path, gsd_m, spec.gsd_m, indexes, spec.resampling))
                   for _ in range(READERS)]
        grid = handles[0]
        if reason := spec.dtype_refusal(image_path, grid.ds.dtypes[0]):
            raise GeofoundryError(reason)
        for handle in handles[1:]:
            handle.share_mask_facts(grid)  # looked up once, not by every reading lane at its first strip
        if area_3857 is None:  # the scene's valid extent: a sparse scene costs the time and memory of its valid area
            region = valid_region(grid, cfg)
            if region is None:
                warnings.warn(f"{image_path}: no valid pixel in the prediction area; skipped", stacklevel=2)
                return False
            area = shapely.box(*window_bounds(region, grid.transform))
        else:
            area = reproject(area_3857, "EPSG:3857", grid.ds.crs, densify_parts=64)
            region = block_window(area.buffer(cfg.overlap * abs(grid.transform.a)), grid.transform, grid.shape)
        if region is None:
            warnings.warn(f"{image_path}: the prediction area lies outside the scene; skipped", stacklevel=2)
            return False
        height, width = int(region.height), int(region.width)
        transform = grid.transform  # read once: a dataset handle is not for several threads at a time
        qx, qy = abs(transform.a) / 4, abs(transform.e) / 4  # a quarter pixel
        shapely.prepare(area)

        def read_flags(lane: int, row: int, first: int, end: int, out: np.ndarray) -> None:
            """:class:`PixelFlag` values in place from the mask (0/255): valid pixels keep the bits they are masked
            with (``WANTED`` inside the area, ``VALID`` outside), invalid ones stay 0."""
            win = Window(region.col_off + first, region.row_off + row, end - first, cfg.tile)
            handles[lane].mask(win, out=out)
            out[:, max(0, width - first):] = 0  # a region narrower than a tile: the rest is padding
            if first >= width or row >= height:
                out &= VALID
                return
            # the pixel centres of the piece's part inside the region, a quarter pixel inside its box's edges
            left, bottom, right, top = window_bounds(Window(win.col_off, win.row_off, min(end, width) - first,
                                                            min(cfg.tile, height - row)), transform)
            if area.contains_properly(shapely.box(left + qx, bottom + qy, right - qx, top - qy)):
                out &= WANTED
            else:
                with IN_MEMORY_DATASETS:
                    inside = geometry_mask([area], out_shape=out.shape, transform=window_transform(win, transform),
                                           invert=True)
                out &= VALID + INSIDE * inside
            out[max(0, height - row):] &= VALID  # below the region: context for tiles, never wanted

        def invalid(row: int) -> bool:
            """Whether the strip at ``row`` holds no valid pixel, known from the mask's constant blocks."""
            return grid.known_invalid(Window(region.col_off, region.row_off + row, max(width, cfg.tile), cfg.tile))

        def read_bands(lane: int, row: int, first: int, end: int, out: np.ndarray) -> None:
            handles[lane].bands(Window(region.col_off + first, region.row_off + row, end - first, cfg.tile), out=out)

        any_valid = False
        classes = classes or spec.classes
        with ProbabilityWriter(out_path, grid.ds.crs, grid.ds.window_transform(region), width, height,
                               classes[1:], cfg.overviews, cfg.compress) as writer:
            pixels = Region(read_flags, read_bands, height, width, dtype=np.dtype(grid.ds.dtypes[0]),
                            low=np.asarray(spec.low), lanes=READERS, block_width=grid.ds.block_shapes[0][1],
                            col_off=int(region.col_off),
                            known_invalid=invalid if grid.mask_blocks is not None else None)
            sliding = Sliding(cfg.tile, cfg.overlap, cfg.batch_size, len(classes), tuple(writer.factors))
            n_rows = len(starts(0, height, cfg.tile, cfg.tile - cfg.overlap))
            with task(f"{Path(image_path).stem}: rows of tiles", n_rows) as rows:
                for strip in predict_region(pixels, model, sliding):
                    any_valid = any_valid or strip.rows.valid is not None
                    writer.write(strip)
                    rows.advance()
        if not any_valid:
            out_path.unlink()
            warnings.warn(f"{image_path}: no valid pixel in the prediction area; skipped", stacklevel=2)
            return False
    return True


def valid_region(grid: ModelGrid, cfg: PredictConfig) -> Window | None:
    """The whole scene cut to the tiles that reach into its valid window (:meth:`ModelGrid.valid_window`): the same
    tiles as over the whole scene, so every valid pixel gets the same probabilities; None when nothing is valid."""
    valid = grid.valid_window()
    if valid is None:
        return None
    step = cfg.tile - cfg.overlap
    c0, c1 = tiles_reaching(int(valid.col_off), int(valid.col_off + valid.width), grid.shape[1], cfg.tile, step)
    r0, r1 = tiles_reaching(int(valid.row_off), int(valid.row_off + valid.height), grid.shape[0], cfg.tile, step)
    return Window(c0, r0, c1 - c0, r1 - r0)


SPLITS = ("val", "test")  # what the stage maps: validation (the running point search) and test (evaluation)


def split_areas(scenes: pd.DataFrame, blocks, split: str) -> dict[str, shapely.Geometry]:
    """Union of the blocks of ``split``, per scene that has any."""
    area = shapely.union_all(blocks.loc[blocks["split"] == split].geometry.values)
    return {row["scene_id"]: area for _, row in scenes.iterrows() if split in str(row.get("splits", "")).split(",")}


def run(cfg: PredictConfig, selection_dir: Path, chips_dir: Path, model_path: Path, out_dir: Path,
        metrics_path: Path | None = None, cache: Path | None = None, splits: tuple[str, ...] = SPLITS) -> dict:
    """Write ``out_dir/<split>/<scene_id>.tif`` for every scene with blocks of each of ``splits`` (inside the
    geofence, if any), and to ``metrics_path`` the scene ids written per split and what ran each model (engine,
    why, the compiled engine's first-batch parity). The test area is required; another split without blocks (or
    outside the geofence) is left empty, with a warning. ``cache``: where compiled packages are kept (default
    :func:`~geofoundry.models.compiled.default_cache`)."""
    from .torch_model import build_model_fn  # torch only here: bundle prediction runs without it

    group = launched()
    pin(group)  # under torchrun: cuda (or auto) is this rank's cuda:LOCAL_RANK
    spec = InputSpec.load(chips_dir / "stats.json")
    model, outputs = build_model_fn(cfg, spec, model_path, cache)
    joined = join(group, getattr(model.arrays, "cuda", False))
    try:
        return _run(cfg, selection_dir, splits, out_dir, metrics_path, spec, model, outputs, group)
    finally:
        leave(joined)


def _run(cfg: PredictConfig, selection_dir: Path, splits: tuple[str, ...], out_dir: Path, metrics_path: Path | None,
         spec: InputSpec, model: TileModel, outputs: list[str], group: Group) -> dict:
    """:func:`run` on this rank (``group``): its share of the scenes, by valid pixels on the model grid; rank 0
    prepares the folders and writes the metrics."""
    import geopandas as gpd  # stage-only imports: predict_scene (bundles, benchmarks) needs neither

    from ..io.areas import area_in

    scenes = pd.read_parquet(selection_dir / "scenes.parquet")
    blocks = gpd.read_parquet(selection_dir / "blocks.parquet")
    try:
        fence = area_in(cfg.geofence, "EPSG:3857") if cfg.geofence else None
    except ValueError as e:
        raise GeofoundryError(f"predict.geofence: {e}") from None
    jobs = []
    for split in splits:
        areas = split_areas(scenes, blocks, split)
        if fence is not None:
            areas = {k: a.intersection(fence) for k, a in areas.items() if a.intersects(fence)}
        if not areas:
            why = (f"predict.geofence does not overlap the {split} area of any scene" if fence is not None
                   else f"{selection_dir}: no scene has {split} blocks")
            if split == "test":
                raise GeofoundryError(why)
            warnings.warn(f"{why}: no {split} maps", stacklevel=2)
        split_dir = out_dir / split
        if group.main:
            split_dir.mkdir(parents=True, exist_ok=True)
            for stale in outputs_in(split_dir, ".tif"):
                if stale.stem not in areas:
                    stale.unlink()
        jobs += [(split, row, areas[row["scene_id"]]) for _, row in scenes[scenes["scene_id"].isin(areas)].iterrows()]
    group.gather(None)  # every rank waits for rank 0's folders
    pixels = [row["width"] * row["height"] * row.get("valid_frac", 1.0) * (row["gsd_m"] / spec.gsd_m) ** 2
              for _, row, _ in jobs]
    mine = balance(pixels, group.world)[group.rank]
    written = set()
    with task("predict", len(mine), enabled=group.main) as bar:
        for split, row, area in (jobs[i] for i in mine):
            if predict_scene(row["image_path"], row["band_names"].split("|"), float(row["gsd_m"]), area, spec,
                             model, cfg, out_dir / split / f"{row['scene_id']}.tif", outputs):
                written.add((split, row["scene_id"]))
            bar.advance()
    written = set().union(*group.gather(written))
    done = {split: [row["scene_id"] for s, row, _ in jobs if s == split and (s, row["scene_id"]) in written]
            for split in splits}
    if group.main:
        for stale in outputs_in(out_dir, ".tif"):  # maps of the former flat layout, once the new ones are written
            stale.unlink()
    log.info("predicted %s", done)
    result = {"scenes": done, "engines": model.engines}
    if metrics_path is not None and group.main:
        write_json(metrics_path, result)
    return result
