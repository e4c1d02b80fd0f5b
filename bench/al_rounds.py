"""The rounds of the active-learning simulation (``bench/active_learning.py run``): torch only, no rasterio, so they
run on a GPU machine that has neither rasterio nor geopandas.

A job trains the train stage (``geofoundry.train.run``, no tracking) on the chips of its labelled blocks, predicts
every test region with the predict stage's model function and sliding window (``predict.torch_model``,
``predict.sliding``), keeps the footprint probability of the region's test pixels, and, when its chain goes on,
scores the unlabelled pool blocks (``geofoundry.al``) and picks the next ones. Jobs run in worker processes, as
many at a time as ``--workers``; the chains of one seed share their first round and the full pool's run.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import shutil
import time
import zipfile
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

MAPS_MAX_BYTES = 12_000_000  # one maps_<k>.npz file, which may pass it by a job (a device returns files under 16 MB)


def load_array(path: Path) -> np.ndarray:
    """An array saved by ``save_array`` (``.npy.xz``)."""
    return np.load(io.BytesIO(lzma.decompress(path.read_bytes())))


def save_array(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array))
    path.write_bytes(lzma.compress(buf.getvalue(), preset=6))


@dataclass
class Job:
    seed: int
    strategy: str  # "start" (the seed's first round, shared by every chain), "full", or the chain's strategy
    round: int
    labelled: list[str]  # block ids
    goes_on: list[str] = field(default_factory=list)  # strategies whose next blocks this job's model picks

    @property
    def key(self) -> str:
        return f"s{self.seed}-{self.strategy}-r{self.round}"


def unpack(pack: Path, work: Path) -> Path:
    """The pack's chips as the train stage reads them (``.npy`` files), under ``work/chips``."""
    chips = work / "chips"
    for split in ("train", "val"):
        (chips / split).mkdir(parents=True, exist_ok=True)
        for name in ("images", "labels", "instances"):
            np.save(chips / split / f"{name}.npy", load_array(pack / f"{split}_{name}.npy.xz"))
    shutil.copy(pack / "stats.json", chips / "stats.json")
    return chips


def subset_chips(chips: Path, rows: np.ndarray, out: Path) -> Path:
    """A chips folder whose train split holds ``rows`` of ``chips``' train split (val and stats shared)."""
    (out / "train").mkdir(parents=True, exist_ok=True)
    for name in ("images", "labels", "instances"):
        np.save(out / "train" / f"{name}.npy", np.load(chips / "train" / f"{name}.npy", mmap_mode="r")[rows])
    for name in ("val", "stats.json"):
        if not (out / name).exists():
            (out / name).symlink_to((chips / name).resolve())
    return out


def predict_regions(best: Path, spec, regions: list[dict], pack: Path, recipe: dict, device: str) -> dict:
    """uint8 footprint probability at each region's test pixels (flags == 3), by region index."""
    from geofoundry.config import PredictConfig
    from geofoundry.models.outputs import footprints
    from geofoundry.predict.sliding import PixelFlag, Region, Sliding, predict_region
    from geofoundry.predict.torch_model import build_model_fn

    cfg = PredictConfig(**recipe["predict"], device=device)
    model, outputs = build_model_fn(cfg, spec, best)
    aux = tuple(outputs[len(spec.classes):])
    out = {}
    for k, reg in enumerate(regions):
        bands, flags = load_array(pack / f"region{k}_bands.npy.xz"), load_array(pack / f"region{k}_flags.npy.xz")
        h, w = reg["height"], reg["width"]

        def read_flags(lane, row, first, end, dst, flags=flags):
            dst[:] = flags[row:row + cfg.tile, first:end]

        def read_bands(lane, row, first, end, dst, bands=bands):
            dst[:] = bands[:, row:row + cfg.tile, first:end]

        values = np.zeros((len(outputs) - 1, h, w), np.uint8)
        region = Region(read_flags, read_bands, h, w, dtype=bands.dtype, low=np.asarray(spec.low), lanes=1)
        for strip in predict_region(region, model, Sliding(cfg.tile, cfg.overlap, cfg.batch_size, len(outputs))):
            if strip.rows.values is not None:
                values[:, strip.rows.top:strip.rows.top + strip.rows.n] = strip.rows.values
        fp = footprints(values, aux, 255)[0]
        out[k] = fp[flags[:h, :w] == int(PixelFlag.WANTED)]
    return out


def score_pool(best: Path, spec, chips: Path, chip_blocks: list[str], pool: list[str], labelled: list[str],
               strategies: list[str], n: int, seed: int, device: str) -> dict[str, list[str]]:
    """The next ``n`` blocks of each strategy among the unlabelled pool blocks, picked with ``best``."""
    from geofoundry.al.score import Scorer, TorchProber
    from geofoundry.al.strategies import STRATEGIES
    from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(best, spec.bands)
    prober = TorchProber([model_from_checkpoint(ckpt)], ckpt["classes"], device)
    images = np.load(chips / "train" / "images.npy", mmap_mode="r")
    labels = np.load(chips / "train" / "labels.npy", mmap_mode="r")
    tile = {b: i for i, b in enumerate(pool)}
    owner = np.array([tile[b] for b in chip_blocks])
    done = np.isin(np.array(chip_blocks), labelled)
    among = np.array([tile[b] for b in pool if b not in set(labelled)])
    picks = {}
    for name in strategies:
        scorer = Scorer(prober, STRATEGIES[name], spec.classes)
        for rows, add in ((np.flatnonzero(~done), scorer.add), (np.flatnonzero(done), scorer.add_labelled)):
            for start in range(0, len(rows), 16):
                r = rows[start:start + 16]
                add(np.asarray(images[r]), np.asarray(labels[r]) != spec.ignore_index, owner[r])
        picks[name] = [pool[p.index] for p in scorer.pick(n, seed, among)]
    return picks


def run_job(job: dict, pack: str, work: str, recipe: dict, device: str, threads: int) -> dict:
    """One job in a worker process: train, predict the test regions, pick the next blocks."""
    import torch

    from geofoundry import train
    from geofoundry.config import TrainConfig
    from geofoundry.models.input_spec import InputSpec

    torch.set_num_threads(threads)
    pack, work, job = Path(pack), Path(work), Job(**job)
    manifest = json.loads((pack / "manifest.json").read_text())
    chips, chip_blocks, pool = work / "chips", manifest["chip_blocks"], manifest["pool"]
    spec = InputSpec.load(chips / "stats.json")
    t0 = time.perf_counter()
    rows = np.flatnonzero(np.isin(np.array(chip_blocks), job.labelled))
    folder = work / "jobs" / job.key
    sub = subset_chips(chips, rows, folder / "chips")
    cfg = TrainConfig(**recipe["train"], seed=job.seed, resume=False, device=device, threads=threads)
    result = train.run(cfg, recipe["arch"], sub, folder / "models", None)
    best = folder / "models" / "best.pt"
    t1 = time.perf_counter()
    maps = predict_regions(best, spec, manifest["regions"], pack, recipe, device)
    t2 = time.perf_counter()
    step = max(1, round(manifest["step"] * len(pool)))
    picks = score_pool(best, spec, chips, chip_blocks, pool, job.labelled, job.goes_on, step,
                       job.seed * 1000 + job.round, device) if job.goes_on else {}
    t3 = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    return {**asdict(job), "key": job.key, "fraction": len(job.labelled) / len(pool), "chips": len(rows),
            "val": result["best"], "picks": picks, "maps": {str(k): v for k, v in maps.items()},
            "seconds": {"train": round(t1 - t0, 1), "predict": round(t2 - t1, 1), "score": round(t3 - t2, 1)}}


class Maps:
    """Test-pixel maps of finished jobs, appended to ``maps_<k>.npz`` files of at most ``MAPS_MAX_BYTES``."""

    def __init__(self, out: Path):
        self.out, self.k = out, 0

    def add(self, key: str, maps: dict[str, np.ndarray]) -> None:
        path = self.out / f"maps_{self.k}.npz"
        if path.is_file() and path.stat().st_size > MAPS_MAX_BYTES:
            self.k += 1
            path = self.out / f"maps_{self.k}.npz"
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_LZMA) as z:
            for region, values in maps.items():
                buf = io.BytesIO()
                np.save(buf, values)
                z.writestr(f"{key}.region{region}.npy", buf.getvalue())


def first_round(pool: list[str], step: int, seed: int) -> list[str]:
    return sorted(np.random.default_rng(seed).choice(pool, step, replace=False).tolist())


def resumed(jobs: list[dict], strategies: list[str], rounds: int) -> list[Job]:
    """The next job of every chain of earlier results (its last job's picks), so that a run goes on where one that
    stopped early left off."""
    last: dict[tuple[int, str], dict] = {}
    for j in jobs:
        for name in (strategies if j["strategy"] == "start" else [j["strategy"]]):
            if name in strategies and j["round"] >= last.get((j["seed"], name), {"round": -1})["round"]:
                last[(j["seed"], name)] = j
    return [Job(seed, name, j["round"] + 1, sorted(j["labelled"] + j["picks"][name]),
                [name] if j["round"] + 2 < rounds else [])
            for (seed, name), j in sorted(last.items()) if name in j["picks"] and j["round"] + 1 < rounds]


def simulate(pack: Path, out: Path, work: Path, recipe: dict, seeds: list[int], strategies: list[str],
             rounds: int, workers: int, device: str, threads: int, deadline_s: float,
             earlier: list[dict] | None = None, only: list[str] | None = None) -> list[dict]:
    """Run every chain (seed × strategy) for ``rounds`` rounds, and each seed's full pool; write
    ``out/results.json`` and ``out/maps_<k>.npz`` as jobs finish. No job starts once the next would likely end after
    ``deadline_s`` (then the curves stop short, and the results say so). With ``earlier`` jobs (of a run that
    stopped early), the chains go on from them instead (``only``: these chains, ``s<seed>-<strategy>``)."""
    start = time.perf_counter()
    manifest = json.loads((pack / "manifest.json").read_text())
    if (recipe["predict"]["tile"], recipe["predict"]["overlap"]) != (manifest["tile"], manifest["overlap"]):
        raise SystemExit(f"{pack}: prepared for tile {manifest['tile']} and overlap {manifest['overlap']}, "
                         f"the recipe predicts with {recipe['predict']['tile']} and {recipe['predict']['overlap']}")
    pool = manifest["pool"]
    step = max(1, round(manifest["step"] * len(pool)))
    unpack(pack, work)
    out.mkdir(parents=True, exist_ok=True)
    if earlier:
        chains = [j for j in resumed(earlier, strategies, rounds) if not only or f"s{j.seed}-{j.strategy}" in only]
        ready = deque(sorted(chains, key=lambda j: (j.round, j.seed, j.strategy)))
    else:
        ready = deque(Job(s, "full", 0, list(pool)) for s in seeds)
        ready.extendleft(Job(s, "start", 0, first_round(pool, step, s), list(strategies)) for s in reversed(seeds))
    results, maps, running, durations = [], Maps(out), {}, []
    meta = {"recipe": recipe, "seeds": seeds, "strategies": strategies, "rounds": rounds, "workers": workers,
            "device": device, "pool_blocks": len(pool), "step_blocks": step, "stopped_early": False,
            "machine": machine()}
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        while ready or running:
            elapsed = time.perf_counter() - start
            typical = float(np.median(durations)) if durations else 0.0
            while ready and len(running) < workers:
                if durations and elapsed + typical * 1.1 > deadline_s:
                    meta["stopped_early"] = True
                    ready.clear()
                    break
                job = ready.popleft()
                running[ex.submit(run_job, asdict(job), str(pack), str(work), recipe, device, threads)] = \
                    (job, time.perf_counter())
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                job, began = running.pop(fut)
                res = fut.result()
                durations.append(time.perf_counter() - began)
                maps.add(res["key"], res.pop("maps"))
                results.append(res)
                nxt = job.round + 1
                for name, picked in res["picks"].items():
                    more = Job(job.seed, name, nxt, sorted(job.labelled + picked),
                               [name] if nxt + 1 < rounds else [])
                    ready.append(more)
                ready = deque(sorted(ready, key=lambda j: (j.round, j.seed, j.strategy)))
                meta["elapsed_s"] = round(time.perf_counter() - start, 1)
                (out / "results.json").write_text(json.dumps({**meta, "jobs": results}, indent=1))
                print(f"{res['key']}: {len(job.labelled)} blocks, {res['chips']} chips, val {res['val']}, "
                      f"{res['seconds']} ({meta['elapsed_s']} s)", flush=True)
    return results


def machine() -> dict:
    import platform

    import torch

    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name() if cuda else "cpu", "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__}
