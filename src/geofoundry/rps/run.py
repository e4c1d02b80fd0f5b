"""The rps stage: try points of ``rps.settings`` on the validation maps and hand back the best one.

Trial 0 is the current params; then the sampler (``rps.search``) proposes up to ``rps.trials`` new points. Each
point's predict settings pick its probability maps (:mod:`.maps`), its postprocess settings make a chain that runs
on them (:mod:`.chains`, work shared between trials is done once), and the objects are scored against the
validation truth (:mod:`.truth`) with the evaluate stage's matching. Only validation maps and the truth inside the
validation blocks are read: the test split stays for the evaluate stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import EvaluateConfig, PostprocessConfig, PredictConfig, RpsConfig
from ..errors import GeofoundryError
from ..evaluate.run import load_selection
from ..io.labelled import PATH_COLUMN
from ..postprocess.registry import build_chain
from ..progress import task
from .chains import ChainRunner, ValMap, open_map, step_keys
from .digest import code_digest, files_digest, value_digest
from .maps import MapSource, tifs
from .memo import Memo
from .objectives import OBJECTIVES
from .outputs import write_outputs
from .samplers import SAMPLERS, Sampler
from .settings import Setting, SettingsError, grid_size
from .space import apply_point, check_space, current_point, override_text
from .store import TrialStore
from .truth import ValScene, figures, score_scene, val_scene

log = logging.getLogger(__name__)
GIB = 2**30
MAX_REPEATS = 1000  # proposals of points already tried, in a row, after which the space counts as exhausted


@dataclass(frozen=True)
class MapSet:
    """The validation maps of one predict setting, ready for trials."""

    maps: list[ValMap]
    scenes: list[ValScene]
    key: str  # digest of the maps and their truth


def _point_key(point: dict[str, Any]) -> str:
    return value_digest(point)


def next_point(sampler: Sampler, tried: dict[str, float]) -> dict[str, Any] | None:
    """The sampler's next point not tried yet (a point tried before is told its objective again); None when the
    sampler has no more or keeps proposing tried ones."""
    for _ in range(MAX_REPEATS):
        point = sampler.ask()
        if point is None:
            return None
        value = tried.get(_point_key(point))
        if value is None:
            return point
        sampler.tell(value)
    return None


class Trials:
    """Figures of points: maps per predict setting, chains with shared work, trials kept across runs."""

    def __init__(self, cfg: RpsConfig, postprocess: PostprocessConfig, evaluate: EvaluateConfig,
                 selection_dir: Path, source: MapSource, cache_dir: Path):
        self.postprocess, self.evaluate, self.source = postprocess, evaluate, source
        self.scenes_table, names, paths = load_selection(selection_dir)
        self.class_paths = paths[1:]
        self.n_classes = len(names)
        self.runner = ChainRunner(Memo(cfg.memory_gb * GIB), names[1:], postprocess.workers)
        self.store = TrialStore(Path(cache_dir) / "trials.jsonl")
        self.code = code_digest("rps", "postprocess", "evaluate", "models", "io")
        self.reused = 0
        self._sets: dict[Path, MapSet] = {}

    def close(self) -> None:
        self.runner.close()

    def map_set(self, cfg: PredictConfig) -> MapSet:
        folder = self.source.folder(cfg)
        if folder not in self._sets:
            paths = tifs(folder)
            unknown = [p.name for p in paths if p.stem not in self.scenes_table.index]
            if unknown:
                raise GeofoundryError(f"{folder}: {unknown} match no scene_id of the selection")
            rows = [self.scenes_table.loc[p.stem] for p in paths]
            scenes = [val_scene(row, p, self.class_paths, self.evaluate) for row, p in zip(rows, paths)]
            labels = sorted({row["labels_path"] for row in rows})
            areas = sorted({str(row.get(PATH_COLUMN, "") or "") for row in rows} - {""})  # labelled areas
            key = value_digest([files_digest(paths), files_digest(labels), files_digest(areas), self.class_paths,
                                self.evaluate.model_dump(mode="json"), self.postprocess.window_px,
                                self.postprocess.halo_px])
            self._sets[folder] = MapSet([open_map(p, self.postprocess) for p in paths], scenes, key)
        return self._sets[folder]

    def figures(self, steps: list[dict], cfg: PredictConfig) -> tuple[dict, bool]:
        """Validation object figures of the chain ``steps`` on the maps of ``cfg``; and whether they were kept from
        an earlier run."""
        maps = self.map_set(cfg)
        key = value_digest([self.code, maps.key, steps])
        kept = self.store.get(key)
        if kept is not None:
            self.reused += 1
            return kept, True
        chain = build_chain(steps)
        objects = self.runner.objects(maps.maps, chain, step_keys(steps))
        result = figures([score_scene(s, o, self.n_classes, self.evaluate) for s, o in zip(maps.scenes, objects)])
        self.store.put(key, result)
        return result, False


def _best(rows: list[dict]) -> dict:
    """Highest objective; ties: higher F1, then the earlier trial (the current params first)."""
    return max(rows, key=lambda r: (r["objective"], r["f1"], -r["trial"]))


def _summary(cfg: RpsConfig, settings: list[Setting], rows: list[dict], seconds: float, source: MapSource,
             trials: Trials) -> dict:
    def point(row: dict) -> dict:
        values = {s.key: row[s.key] for s in settings}
        return {"trial": row["trial"], "settings": values, "objective": row["objective"],
                "feasible": bool(row["feasible"]),
                "set": [override_text(s, values[s.key]) for s in settings],
                "val": {k: row[k] for k in ("precision", "recall", "f1", "ap", "tp", "fp", "fn")}}

    best = _best(rows)
    memo = trials.runner.memo
    return {
        "search": cfg.search, "objective": cfg.objective,
        "floor": cfg.floor if OBJECTIVES[cfg.objective].floored else None, "trials": len(rows) - 1,
        "seconds": round(seconds, 1),
        "best": point(best), "params": point(rows[0]),
        "work": {"maps_predicted": source.predicted, "trials_reused": trials.reused,
                 "memo_hits": memo.hits, "memo_misses": memo.misses},
    }


def run(cfg: RpsConfig, postprocess: PostprocessConfig, predict: PredictConfig, evaluate: EvaluateConfig,
        selection_dir: Path, val_maps: Path, chips_dir: Path, model_path: Path, cache_dir: Path,
        metrics_path: Path, report_path: Path, plots_dir: Path) -> dict:
    """Search; write ``plots_dir`` (trials.csv, pareto.csv, f1_by_setting/), the summary (``report_path``) and its
    headline (``metrics_path``); return the summary. ``val_maps``: the predict stage's validation maps
    (``data/predictions/val``)."""
    if not cfg.settings:
        raise GeofoundryError("rps.settings is empty: name at least one predict or postprocess setting to vary "
                              "(docs/RPS.md)")
    try:
        settings = check_space(cfg, postprocess.steps, predict)
    except SettingsError as e:
        raise GeofoundryError("\n".join(["invalid rps parameters", *e.lines()])) from None
    objective = OBJECTIVES[cfg.objective]
    sampler = SAMPLERS[cfg.search].make(settings, cfg.seed)
    source = MapSource(predict, val_maps, cache_dir, cfg.disk_gb * GIB, selection_dir, chips_dir, model_path)
    trials = Trials(cfg, postprocess, evaluate, selection_dir, source, cache_dir)
    start = time.perf_counter()
    rows: list[dict] = []
    tried: dict[str, float] = {}

    def trial(point: dict[str, Any], origin: str) -> float:
        t0 = time.perf_counter()
        steps, predict_cfg = apply_point(point, settings, postprocess.steps, predict)
        result, kept = trials.figures(steps, predict_cfg)
        value = objective.value(result, cfg.floor)
        row = {"trial": len(rows), "source": origin, **point, **result, "objective": round(value, 6),
               "feasible": int(objective.feasible(result, cfg.floor)), "cached": int(kept),
               "seconds": round(time.perf_counter() - t0, 3)}
        rows.append(row)
        tried[_point_key(point)] = value
        return value

    try:
        current = current_point(settings, postprocess.steps, predict)
        trial(current, "params")
        left = grid_size(settings)  # points of a finite space not tried yet
        if left is not None and all(current[s.key] in s.values() for s in settings):
            left -= 1
        budget = cfg.trials if left is None else min(cfg.trials, left)
        with task("rps trials", budget) as bar:
            for _ in range(budget):
                point = next_point(sampler, tried)
                if point is None:
                    log.info("rps: the space has no point left to try")
                    break
                sampler.tell(trial(point, "search"))
                bar.advance(info=f"best {cfg.objective} {max(tried.values()):.3f}")
    finally:
        trials.close()
    summary = _summary(cfg, settings, rows, time.perf_counter() - start, source, trials)
    write_outputs(rows, settings, summary, Path(metrics_path), Path(report_path), Path(plots_dir))
    best = summary["best"]
    if not best["feasible"]:
        log.warning("rps: no point reaches the floor %s of %s; the best is the closest", cfg.floor, cfg.objective)
    log.info("rps: %d trials in %.0f s; best trial %d (%s): val object F1 %.3f (P %.3f, R %.3f), current params %.3f",
             summary["trials"], summary["seconds"], best["trial"], ", ".join(best["set"]), best["val"]["f1"],
             best["val"]["precision"], best["val"]["recall"], summary["params"]["val"]["f1"])
    return summary
