"""The postprocess chain on the validation maps, trial after trial, doing each piece of work once.

A validation map is mostly outside the validation blocks (no valid pixel there), so it is processed by islands:
each 8-connected group of valid pixels (cut by ``postprocess.window_px`` windows when larger) is read with a halo of
``postprocess.halo_px`` and keeps the objects whose representative point lies on it; the vector part of the chain
then runs on all the map's objects together. This is how the postprocess stage processes a large scene by windows,
so a trial's objects are the stage's, under the stage's own condition (objects narrower than the halo).

Every state along the chain is kept in a :class:`~.memo.Memo` under the chain prefix that made it (the steps up to
it, with their parameters): a trial resumes from the longest prefix it shares with earlier trials. Two thresholds
read the map once; two minimum areas after the same threshold and morphology polygonize once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.windows import Window
from scipy import ndimage as ndi

from ..config import PostprocessConfig
from ..errors import GeofoundryError
from ..io.signals import ThreadPool
from ..postprocess.registry import Chain
from ..postprocess.run import read_window
from ..postprocess.state import SceneState
from ..postprocess.windows import valid_outline
from .memo import Memo

OBJECT_BYTES = 6000  # memory held by one polygon with its attributes (BENCHMARKS.md, postprocess)
EMPTY = np.zeros((0, 0), bool)


@dataclass(frozen=True, eq=False)
class Unit:
    """A piece of a map processed on its own: the pixels of one island of valid pixels (8-connected) inside
    ``core``, read with a halo (``read``); it keeps the objects whose representative point lies on them."""

    core: Window
    read: Window
    island: np.ndarray  # (core rows, core cols) bool: the island's pixels in the core

    def keeps(self, objects: gpd.GeoDataFrame, transform: Affine) -> np.ndarray:
        """Rows of ``objects`` (in the map's CRS) that this unit keeps (``transform``: the map's)."""
        points = objects.geometry.representative_point()
        cols, rows = ~transform * (points.x.to_numpy(), points.y.to_numpy())
        rows = np.floor(rows).astype(int) - int(self.core.row_off)
        cols = np.floor(cols).astype(int) - int(self.core.col_off)
        inside = (rows >= 0) & (rows < self.island.shape[0]) & (cols >= 0) & (cols < self.island.shape[1])
        out = np.zeros(len(objects), bool)
        out[inside] = self.island[rows[inside], cols[inside]]
        return out


@dataclass(frozen=True, eq=False)
class ValMap:
    """A probability map cut into :class:`Unit` s."""

    path: Path
    transform: Affine
    units: tuple[Unit, ...]
    window_px: int  # the side of the windows valid_outline traces by


def open_map(path: Path, cfg: PostprocessConfig) -> ValMap:
    """The units of a map: each island of valid pixels, cut by windows of ``postprocess.window_px`` where it is
    larger, read with a halo of ``postprocess.halo_px``; so each unit's objects are those of the whole map, under
    the postprocess stage's own condition for windows (objects narrower than the halo)."""
    with rasterio.open(path) as ds:
        valid = ds.dataset_mask() > 0
        transform, (height, width) = ds.transform, ds.shape
    labels, n = ndi.label(valid, structure=np.ones((3, 3), bool))
    if not n:
        raise GeofoundryError(f"{path}: no valid pixel (the predict stage writes no such map)")
    units = []
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        rows, cols = box
        side = cfg.window_px or max(rows.stop - rows.start, cols.stop - cols.start)
        for r0 in range(rows.start, rows.stop, side):
            for c0 in range(cols.start, cols.stop, side):
                r1, c1 = min(r0 + side, rows.stop), min(c0 + side, cols.stop)
                island = labels[r0:r1, c0:c1] == k
                if not island.any():
                    continue
                rr0, cc0 = max(0, r0 - cfg.halo_px), max(0, c0 - cfg.halo_px)
                read = Window(cc0, rr0, min(width, c1 + cfg.halo_px) - cc0, min(height, r1 + cfg.halo_px) - rr0)
                units.append(Unit(Window(c0, r0, c1 - c0, r1 - r0), read, island))
    return ValMap(Path(path), transform, tuple(units), cfg.window_px or max(height, width, 1))


def state_bytes(state: SceneState, parent: SceneState | None) -> int:
    """Memory that ``state`` adds to ``parent`` (arrays it shares with it are not counted again)."""
    fields = ("prob", "mask", "instances", "valid")
    shared = {id(getattr(parent, f)) for f in fields} if parent is not None else set()
    arrays = [a for a in (getattr(state, f) for f in fields) if a is not None and id(a) not in shared]
    return sum(a.nbytes for a in arrays) + OBJECT_BYTES * (0 if state.objects is None else len(state.objects)) + 1024


def step_keys(steps: list[dict]) -> tuple[str, ...]:
    """One key per step of ``postprocess.steps``: its operation and parameters."""
    return tuple(json.dumps(item, sort_keys=True, default=str) for item in steps)


class ChainRunner:
    """Objects of chains on maps, with each chain prefix's state kept in ``memo``; ``workers`` threads."""

    def __init__(self, memo: Memo, class_names: list[str], workers: int):
        self.memo = memo
        self.class_names = class_names
        self._pool = ThreadPool(max_workers=workers, thread_name_prefix="rps")
        self._outlines: dict[Path, Callable[[int], object]] = {}

    def close(self) -> None:
        self._pool.shutdown()

    def _resume(self, where: Hashable, first: Callable[[], SceneState], chain: Chain, keys: tuple[str, ...],
                start: int, stop: int) -> SceneState:
        """The state after step ``stop`` (excluded) at ``where``: from the longest prefix kept, else from
        ``first()`` (the state before step ``start``); every state computed on the way is kept."""
        for i in range(stop, start, -1):
            state = self.memo.get((where, keys[:i]))
            if state is not None:
                break
        else:
            i, state = start, first()
        for j, after in enumerate(chain.states(state, i, stop), i + 1):
            self.memo.put((where, keys[:j]), after, state_bytes(after, state))
            state = after
        return state

    def _read(self, vmap: ValMap, unit: int) -> SceneState:
        key = (vmap.path, unit, "read")
        state = self.memo.get(key)
        if state is None:
            with rasterio.open(vmap.path) as ds:
                state = read_window(ds, self.class_names, vmap.units[unit].read)
            self.memo.put(key, state, state_bytes(state, None))
        return state

    def _raster(self, vmap: ValMap, unit: int, chain: Chain, keys: tuple[str, ...], cut: int) -> SceneState:
        """The objects that a unit keeps after the raster part of the chain."""
        state = self._resume((vmap.path, unit), partial(self._read, vmap, unit), chain, keys, 0, cut)
        return replace(state, valid=EMPTY, objects=state.objects[vmap.units[unit].keeps(state.objects,
                                                                                        vmap.transform)])

    def _scene(self, vmap: ValMap, pieces: list[SceneState], chain: Chain) -> SceneState:
        """The state before the vector part: the units' objects together, as
        :func:`geofoundry.postprocess.windows.run_windowed` joins its windows'."""
        objects = gpd.GeoDataFrame(pd.concat([p.objects for p in pieces], ignore_index=True), crs=pieces[0].crs)
        outline = None
        if chain.needs_scene_area:  # traced once per map and inset, for every trial
            outline = self._outlines.setdefault(vmap.path, lru_cache(maxsize=8)(
                partial(valid_outline, str(vmap.path), vmap.window_px)))
        return replace(pieces[0], transform=vmap.transform, valid=EMPTY, objects=objects, outline=outline)

    def objects(self, maps: list[ValMap], chain: Chain, keys: tuple[str, ...]) -> list[gpd.GeoDataFrame]:
        """The chain's objects of each map (``keys``: :func:`step_keys` of the chain's steps)."""
        cut = len(chain.split()[0].steps)
        units = [(m, u) for m in maps for u in range(len(m.units))]
        done = list(self._pool.map(lambda mu: self._raster(*mu, chain, keys, cut), units))
        pieces = {id(m): [s for (mm, _), s in zip(units, done) if mm is m] for m in maps}

        def vector(vmap: ValMap) -> gpd.GeoDataFrame:
            first = partial(self._scene, vmap, pieces[id(vmap)], chain)
            return self._resume((vmap.path, "scene"), first, chain, keys, cut, len(keys)).objects

        return list(self._pool.map(vector, maps))
