"""Predict-stage throughput on a whole scene against (a) the bare model forward and (b) a naive window loop, for each
engine that runs the model (``--engines``).

* stage: ``geofoundry.predict.run.predict_scene`` — strips read on the model grid by threads, tiles cut, run and
  blended on the device, masked COG written by a thread and converted at the end: everything included;
* bare: the same model function (engine, precision, batch) on device-resident random tiles (no copies), as many
  tiles as the stage ran;
* naive: read one window, run the model in fp32 on it alone, write it; no overlap, no blending, no skipping.

Engines: ``eager`` (bf16 autocast, replayed from a CUDA graph) and ``compiled`` (the AOTInductor package the stage
builds, compiled first in a process of its own into ``--cache``, then loaded by the stage and bare parts, and
replayed from a CUDA graph too); the stage and bare parts of each engine run the model function of the predict
stage, ``engine_model_fn``, first-batch parity check included.

Each part runs in its own process (peak RSS per part). stage / bare is the ratio of their seconds for the same
tiles (the stage's batches, padded to the batch size on CUDA, as the bare loop runs them); against the naive loop,
pixels/s of the whole map. The stage is timed on its second run (``--cold``: its first): the first loads CUDA's
kernels at their first launch, as the bare loop's untimed first batch does; ``--repeat N`` times N runs after it
and takes their median (a sub-second scene varies by tens of ms from run to run); each timed run writes a new
file (the previous one is removed untimed, as ``dvc repro`` removes a stage's outputs before running it). Every
part builds the model with the same random weights (``--seed``), so the maps, and what compressing and copying
them costs, are the same from process to process. Peak RSS is each part's own high-water mark (``peak_rss``).

    python bench/predict.py --scene ../shared/data/oam_buildings_eafrica_scenes/images/zanzibar_tz_z21.tif --gsd 0.3
    python bench/predict.py --synthetic 40000 --device cuda --batch 16 --engines eager,compiled
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rasterio
from peak_rss import peak_rss_gb
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
RGB = ["red", "green", "blue"]


def synthetic_scene(path: Path, side: int) -> Path:
    """A side² RGB uint8 GeoTIFF (EPSG:3857, 0.3 m, tiled, uncompressed), written by windows; a quarter invalid."""
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 3, "width": side, "height": side, "crs": "EPSG:3857",
               "transform": rasterio.transform.from_origin(3_600_000, 40_000, 0.3, 0.3), "tiled": True,
               "blockxsize": 512, "blockysize": 512, "BIGTIFF": "YES"}
    rng = np.random.default_rng(0)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as ds:
        for row in range(0, side, 2048):
            h = min(2048, side - row)
            block = rng.integers(0, 255, (3, h, side), dtype=np.uint8)
            ds.write(block, window=Window(0, row, side, h))
            mask = np.full((h, side), 255, np.uint8)
            mask[:, : side // 4] = 0
            ds.write_mask(mask, window=Window(0, row, side, h))
    return path


def deployed(args):
    import torch

    from geofoundry.models.deployed import DeployedModel
    from geofoundry.models.registry import build_model

    torch.manual_seed(args.seed)  # the same random weights in every part and run: maps of the same content
    return DeployedModel(build_model(args.arch, 3, 2), [0.0] * 3, [255.0] * 3)


def predict_config(args):
    from geofoundry.config import PredictConfig

    return PredictConfig(tile=args.tile, overlap=args.overlap, batch_size=args.batch, device=args.device,
                         overviews=not args.no_overviews, compress=args.compress, cuda_graphs=not args.no_cuda_graphs,
                         engine=args.engine)


def model_fn(args, counter: list[int]):
    from geofoundry.predict.arrays import TileModel
    from geofoundry.predict.torch_model import engine_model_fn

    model = engine_model_fn(deployed(args), predict_config(args), args.cache)

    def counted(batch):
        counter.append(len(batch))
        t = time.perf_counter()
        try:
            return batch[:, :2] * 0 if args.null_model else model(batch)
        finally:
            MODEL_CALLS.append((t, time.perf_counter(), "MainThread", None))  # CUDA runs on asynchronously

    return TileModel(counted, model.arrays, model.engines)


def part_compile(args) -> dict:
    """The compiled engine's package, compiled into ``--cache`` (or found there)."""
    from geofoundry.models.compiled import cached_package
    from geofoundry.predict.torch_model import resolve_device

    t0 = time.perf_counter()
    path, record = cached_package(deployed(args), args.tile, args.batch, resolve_device(args.device).type,
                                  args.cache)
    return {"seconds": round(time.perf_counter() - t0, 1), "package_mb": round(path.stat().st_size / 2**20, 1),
            "record": record}


def part_stage(args) -> dict:
    from geofoundry.models.input_spec import InputSpec
    from geofoundry.predict.run import predict_scene

    spec = InputSpec(bands=RGB, gsd_m=args.gsd, source_dtype="uint8", low=[0.0] * 3, high=[255.0] * 3,
                     classes=["background", "building"], class_paths=[None, "structure/building"])
    cfg = predict_config(args)
    import importlib

    import geofoundry.predict.sliding as sliding
    import geofoundry.predict.writer as writer
    from geofoundry.io.raster import ModelGrid

    stage = importlib.import_module("geofoundry.predict.run")  # the module (the package's ``run`` is its function)
    stage.READERS = args.readers or stage.READERS
    stage.GDAL_CACHE_MB = args.gdal_cache_mb or stage.GDAL_CACHE_MB
    writer.PENDING = args.writer_pending or writer.PENDING
    sliding.STRIPS_AHEAD = args.strips_ahead or sliding.STRIPS_AHEAD
    tiles: list[int] = []
    model = model_fn(args, tiles)
    for n in (args.batch, 1):  # warm-up (cuDNN autotuning, allocator)
        model(model.arrays.put(np.zeros((n, 3, args.tile, args.tile), np.float32)))
    tiles.clear()
    MODEL_CALLS.clear()

    cog = []  # seconds of the final COG assembly (part of the stage's time)
    rss = RssPhases(args.rss_interval_ms / 1000, args.rss_mappings)
    pool = getattr(model.arrays, "pool", None)  # CUDA: page-locked blocks (strip ring, outputs in flight)
    rss.counters["pinned"] = pool and (lambda: pool.registered)

    def timed_assembly(*a, **k):
        t = time.perf_counter()
        rss.phase = "cog"
        write_cog(*a, **k)
        cog.append(time.perf_counter() - t)

    write_cog, writer.write_cog = writer.write_cog, timed_assembly
    from geofoundry.predict.blend import StripBlender
    from geofoundry.predict.pinned import PinnedPool
    from geofoundry.predict.pyramid import Pyramid
    from geofoundry.predict.tiles import LevelTiles
    from geofoundry.predict.torch_model import TorchArrays

    calls = {"read_mask": timed_calls(ModelGrid, "mask"), "read_bands": timed_calls(ModelGrid, "bands"),
             "write_full": timed_calls(writer.ProbabilityWriter, "_write_full"),  # reader and writer threads
             "write_levels": timed_calls(writer.ProbabilityWriter, "_write_levels"),
             "compress_tiles": timed_calls(LevelTiles, "_append"),  # a block row's tiles: compressed (pool), appended
             "close_files": timed_calls(writer, "_close"),  # one call per writer thread: last block rows
             "main_model": MODEL_CALLS, "main_blend": timed_calls(StripBlender, "add"),  # main thread
             "main_flush": timed_calls(StripBlender, "flush"), "main_pyramid": timed_calls(Pyramid, "add"),
             "main_put": timed_calls(TorchArrays, "put"), "main_take": timed_calls(TorchArrays, "take"),
             "main_write_wait": timed_calls(writer.ProbabilityWriter, "write"),  # one call per strip
             "main_writer_open": timed_calls(writer.ProbabilityWriter, "__enter__"),  # temporary files made
             "main_writer_close": timed_calls(writer.ProbabilityWriter, "__exit__"),  # last writes, COG assembly
             "main_blender_new": timed_calls(StripBlender, "__init__"),
             "unlink": timed_calls(Path, "unlink"), "replace": timed_calls(os, "replace"),  # temporaries, the COG
             "pinned_new": timed_calls(PinnedPool, "_new"),  # page-locked blocks mapped and registered
             "gc": timed_collections()}  # Python's cyclic garbage collector, in whichever thread it runs
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    profiler = cProfile.Profile() if args.profile else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as tmp:
        cold = None
        if not args.cold:  # a first, untimed run: CUDA loads each kernel at its first launch (tens of ms)
            t0 = time.perf_counter()
            predict_scene(str(args.scene), RGB, args.scene_gsd, None, spec, model, cfg, Path(tmp) / "p.tif")
            cold = time.perf_counter() - t0
        rss.reset()
        runs = []
        for _ in range(args.repeat):  # the calls recorded are the last run's
            (Path(tmp) / "p.tif").unlink(missing_ok=True)  # as under `dvc repro`, which removes a stage's outputs
            for recorded in [tiles, cog, *calls.values()]:
                recorded.clear()
            t0 = time.perf_counter()
            with profiler, rss:
                predict_scene(str(args.scene), RGB, args.scene_gsd, None, spec, model, cfg, Path(tmp) / "p.tif")
            runs.append(time.perf_counter() - t0)
        seconds = statistics.median(runs)
        with rasterio.open(Path(tmp) / "p.tif") as ds:
            pixels = ds.width * ds.height
        output_mb = (Path(tmp) / "p.tif").stat().st_size / 2**20
    if args.profile:
        with args.profile.open("w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("tottime").print_stats(40)
    if args.timeline:  # every recorded call, in seconds from the stage's start
        args.timeline.write_text(json.dumps({k: [(round(a - t0, 5), round(b - t0, 5), *rest) for a, b, *rest in v]
                                             for k, v in calls.items()}))
    strips = calls["main_write_wait"]
    return {"seconds": seconds, "runs_seconds": runs, "cold_seconds": cold, "cog_seconds": sum(cog), "pixels": pixels,
            "mpx_per_s": round(pixels / seconds / 1e6, 2), "engines": model.engines, "output_mb": round(output_mb, 1),
            "pinned_peak_gb": pool and pool.peak / 2**30,  # the page-locked pool at its largest, however briefly
            "tiles": int(sum(tiles)),
            "first_strip_seconds": strips[0][0] - t0 if strips else None,  # start-up, then one strip
            "busy_seconds": {k: round(v.seconds(), 2) for k, v in calls.items()}, "rss_gb": rss.peaks,
            "rss_parts_gb": rss.parts}


def gdal_cache_bytes():
    """A function giving the bytes in GDAL's block cache (rasterio's own libgdal, through ctypes), or None."""
    import ctypes
    import glob

    libs = glob.glob(str(Path(rasterio.__file__).parent.parent / "rasterio.libs" / "libgdal*.so*"))
    if not libs:
        return None
    used = ctypes.CDLL(libs[0]).GDALGetCacheUsed64
    used.restype = ctypes.c_int64
    return used


def rss_by_mapping(top: int = 8) -> dict[str, float]:
    """Resident GB by mapping name (anonymous memory as "[anon]"), the largest ``top``, from /proc/self/smaps."""
    sizes: dict[str, float] = {}
    name = "[anon]"
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=6)
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5].strip() if len(head) > 5 else "[anon]"
            elif head[0] == "Rss:":
                sizes[name] = sizes.get(name, 0.0) + int(head[1]) / 2**20
    return {k: round(v, 3) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:top]}


class RssPhases:
    """Peak resident memory (GB) before the stage ("start"), while strips stream, and during the COG assembly
    (sampled every ``interval`` s from /proc/self/statm by a thread; set ``phase = "cog"`` when the assembly
    starts). At each phase's peak, ``parts`` records GDAL's block cache, any other ``counters`` (functions giving
    bytes) and, with ``mappings``, the resident memory of each kind of mapping (GB): reading /proc/self/smaps
    holds the GIL for 15 ms or more (tens of thousands of lines), time the stage's threads wait, so it is off
    when timing."""

    def __init__(self, interval: float = 0.02, mappings: bool = False):
        self.interval, self.mappings, self.counters = interval, mappings, {"gdal_cache": gdal_cache_bytes()}
        self.reset()

    def reset(self) -> None:
        """Start again from the memory resident now."""
        self.peaks, self.parts, self.phase = {"start": self._now()}, {}, "start"

    @staticmethod
    def _now() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**30

    def _sample(self) -> None:
        last_map = 0.0
        while not self._done.wait(self.interval):
            now = self._now()
            if now > self.peaks.get(self.phase, 0.0):
                self.peaks[self.phase] = round(now, 3)
                parts = {k: round(f() / 2**30, 3) for k, f in self.counters.items() if f}
                if self.mappings and time.perf_counter() - last_map > 0.25:
                    parts["mappings"], last_map = rss_by_mapping(), time.perf_counter()
                elif self.mappings:
                    parts["mappings"] = self.parts.get(self.phase, {}).get("mappings")
                self.parts[self.phase] = parts

    def __enter__(self):
        self.phase, self._done = "stream", threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


class Calls(list):
    """``(start, end, thread, row)`` of each call of a wrapped function (``row``: its window's first row, if any)."""

    def seconds(self) -> float:
        return sum(end - start for start, end, *_ in self)


MODEL_CALLS = Calls()  # each model call of the stage part (on CUDA: the launch; the GPU runs on asynchronously)


def timed_collections() -> Calls:
    """Record each run of Python's cyclic garbage collector (row: the generation collected)."""
    calls, started = Calls(), {}

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            started[threading.get_ident()] = time.perf_counter()
        elif (t := started.pop(threading.get_ident(), None)) is not None:
            calls.append((t, time.perf_counter(), threading.current_thread().name, info["generation"]))

    gc.callbacks.append(record)
    return calls


def timed_calls(cls, name: str) -> Calls:
    """Wrap method ``name`` of ``cls`` to record each call, whatever thread makes it."""
    calls, method = Calls(), getattr(cls, name)

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return method(*a, **k)
        finally:
            window = next((x for x in a if hasattr(x, "row_off")), None)
            calls.append((t, time.perf_counter(), threading.current_thread().name,
                          None if window is None else int(window.row_off)))

    setattr(cls, name, timed)
    return calls


def part_bare(args) -> dict:
    import torch

    model = model_fn(args, [])
    batch = model.arrays.put(np.random.default_rng(0).uniform(0, 255, (args.batch, 3, args.tile, args.tile)))
    model(batch)
    n = max(1, args.tiles // args.batch)
    cuda = model.arrays.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        model(batch)  # stays on the device: no host copy either way
    if cuda:
        torch.cuda.synchronize()
    return {"seconds": (time.perf_counter() - t0) * args.tiles / (n * args.batch), "tiles": args.tiles,
            "engines": model.engines}


def part_naive(args) -> dict:
    import torch

    from geofoundry.models.registry import build_model

    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    net = build_model(args.arch, 3, 2).to(device).eval()
    t0 = time.perf_counter()
    with rasterio.open(args.scene) as src, tempfile.TemporaryDirectory() as tmp:
        profile = {"driver": "GTiff", "dtype": "uint8", "count": 1, "width": src.width, "height": src.height,
                   "crs": src.crs, "transform": src.transform, "tiled": True, "compress": "deflate"}
        with rasterio.open(Path(tmp) / "n.tif", "w", **profile) as dst, torch.inference_mode():
            for row in range(0, src.height, args.tile):
                for col in range(0, src.width, args.tile):
                    win = Window(col, row, min(args.tile, src.width - col), min(args.tile, src.height - row))
                    x = np.zeros((1, 3, args.tile, args.tile), np.float32)
                    x[0, :, : int(win.height), : int(win.width)] = src.read(window=win) / 255.0
                    p = torch.softmax(net(torch.from_numpy(x).to(device)), 1)[0, 1].cpu().numpy()
                    dst.write((p[: int(win.height), : int(win.width)] * 255).astype(np.uint8), 1, window=win)
        pixels = src.width * src.height
    return {"seconds": time.perf_counter() - t0, "pixels": pixels}


def run_part(name: str, argv: list[str]) -> dict:
    """Run one part in a process of its own (a crash in native code prints the Python stacks: faulthandler)."""
    out = subprocess.run([sys.executable, "-X", "faulthandler", __file__, "--part", name, *argv],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        how = f"signal {-out.returncode}" if out.returncode < 0 else f"exit status {out.returncode}"
        raise SystemExit(f"{name} failed ({how}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", type=Path)
    ap.add_argument("--synthetic", type=int, help="generate a side² scene instead")
    ap.add_argument("--keep", type=Path, help="folder to keep the synthetic scene in, and reuse it from")
    ap.add_argument("--scene-gsd", type=float, default=0.0, help="scene GSD (m); 0 = from the file")
    ap.add_argument("--gsd", type=float, default=0.0, help="model GSD (m); 0 = the scene's (no resampling)")
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--seed", type=int, default=0, help="seed of the model's random weights")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--readers", type=int, default=0, help="strip-reading threads (default: the stage's)")
    ap.add_argument("--tiles", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--part", choices=["compile", "stage", "bare", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="eager", help=argparse.SUPPRESS)  # a part's engine
    ap.add_argument("--engines", default="eager",
                    help="comma-separated engines, each timed as stage and bare forward: eager, compiled")
    ap.add_argument("--cache", type=Path,
                    help="folder of compiled packages (default: a temporary one); the same model, tile, batch and "
                         "machine find their package there")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--null-model", action="store_true",
                    help="stage only, with a model that returns zeros at once: the pipeline's own cost")
    ap.add_argument("--no-overviews", action="store_true", help="predict.overviews: false")
    ap.add_argument("--compress", default="zstd", choices=["zstd", "deflate"], help="predict.compress")
    ap.add_argument("--no-cuda-graphs", action="store_true", help="predict.cuda_graphs: false (stage and bare)")
    ap.add_argument("--switch-interval", type=float, default=0.0,
                    help="stage: sys.setswitchinterval (s) for the run, 0 = Python's default (GIL hand-off experiment)")
    ap.add_argument("--gdal-cache-mb", type=int, default=0, help="stage: GDAL block cache (default: the stage's)")
    ap.add_argument("--strips-ahead", type=int, default=0, help="stage: strips read ahead (default: the stage's)")
    ap.add_argument("--writer-pending", type=int, default=0, help="stage: strips queued for the writer threads")
    ap.add_argument("--profile", type=Path, help="stage: write the main thread's cProfile (by own time) here")
    ap.add_argument("--rss-interval-ms", type=float, default=20.0, help="stage: resident memory sampled this often")
    ap.add_argument("--rss-mappings", action="store_true",
                    help="stage: resident memory by mapping at each peak (reading smaps slows the stage)")
    ap.add_argument("--cold", action="store_true", help="stage: time its first run (no untimed run before it)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="stage: timed runs (one after another in the process); its seconds are their median")
    ap.add_argument("--timeline", type=Path, help="stage: write every timed call (start, end, thread, row) here")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.cold and args.repeat > 1:
        ap.error("--cold times the first run alone; --repeat times runs after an untimed first")
    if args.part:
        result = {"compile": part_compile, "stage": part_stage, "bare": part_bare, "naive": part_naive}[args.part](args)
        result["peak_rss_gb"] = peak_rss_gb()
        print(json.dumps(result))
        return
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not set(engines) <= {"eager", "compiled"}:
        ap.error(f"--engines: eager and/or compiled, got {engines}")
    with tempfile.TemporaryDirectory() as tmp:
        args.cache = args.cache or Path(tmp) / "cache"
        if args.synthetic:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            args.scene = folder / f"synthetic_{args.synthetic}.tif"
            if not args.scene.is_file():
                synthetic_scene(args.scene, args.synthetic)
        if not args.scene_gsd:
            from geofoundry.delivery.scene import scene_gsd_m
            with rasterio.open(args.scene) as ds:
                args.scene_gsd = scene_gsd_m(ds)
        args.gsd = args.gsd or args.scene_gsd
        argv = ["--scene", str(args.scene), "--scene-gsd", str(args.scene_gsd), "--gsd", str(args.gsd),
                "--arch", args.arch, "--seed", str(args.seed), "--device", args.device, "--tile", str(args.tile),
                "--overlap", str(args.overlap), "--batch", str(args.batch), "--readers", str(args.readers)]
        argv += ["--no-overviews"] if args.no_overviews else []
        argv += ["--compress", args.compress]
        argv += ["--no-cuda-graphs"] if args.no_cuda_graphs else []
        argv += ["--switch-interval", str(args.switch_interval)]
        argv += ["--gdal-cache-mb", str(args.gdal_cache_mb), "--strips-ahead", str(args.strips_ahead),
                 "--writer-pending", str(args.writer_pending)]
        argv += ["--null-model"] if args.null_model else []
        argv += ["--cold"] if args.cold else []
        argv += ["--repeat", str(args.repeat)]
        argv += ["--rss-interval-ms", str(args.rss_interval_ms)] + (["--rss-mappings"] if args.rss_mappings else [])
        argv += ["--cache", str(args.cache)]
        runs: dict[str, dict] = {}
        compiled = None
        for engine in engines:  # a part that fails is recorded, and the other engines still run
            try:
                if engine == "compiled" and not args.null_model:
                    compiled = run_part("compile", argv)
                stage = run_part("stage", [*argv, "--engine", engine,
                                           *(["--profile", f"{args.profile}.{engine}"] if args.profile else []),
                                           *(["--timeline", f"{args.timeline}.{engine}"] if args.timeline else [])])
                bare = None if args.null_model else run_part("bare", [*argv, "--engine", engine,
                                                                      "--tiles", str(stage["tiles"])])
            except SystemExit as e:
                print(e, file=sys.stderr)
                runs[engine] = {"failed": str(e)}
                continue
            runs[engine] = {"stage": stage, "bare": bare,
                            "stage_vs_bare": round(bare["seconds"] / stage["seconds"], 3) if bare else None}
        done = {e: r for e, r in runs.items() if "stage" in r}
        naive = None if args.skip_naive or args.null_model else run_part("naive", argv)
    result = {"scene": "synthetic %d²" % args.synthetic if args.synthetic else args.scene.name,
              "arch": args.arch, "seed": args.seed, "device": args.device, "tile": args.tile, "overlap": args.overlap,
              "batch": args.batch, "readers": args.readers or "default", "gsd_m": args.gsd,
              "overviews": not args.no_overviews, "compress": args.compress, "cuda_graphs": not args.no_cuda_graphs,
              "switch_interval": args.switch_interval or None, "gdal_cache_mb": args.gdal_cache_mb or "default",
              "strips_ahead": args.strips_ahead or "default", "writer_pending": args.writer_pending or "default",
              "stage_timed_run": ("first (cold)" if args.cold else "second (the first, untimed, loads CUDA kernels)")
              + (f", median of {args.repeat} runs" if args.repeat > 1 else ""),
              "compile": compiled, "engines": runs, "naive": naive,
              "stage_vs_naive": {e: round(naive["seconds"] / naive["pixels"] * r["stage"]["pixels"]
                                          / r["stage"]["seconds"], 3) for e, r in done.items()} if naive else None,
              "compiled_stage_vs_eager_stage": round(done["eager"]["stage"]["seconds"]
                                                     / done["compiled"]["stage"]["seconds"], 3)
              if {"eager", "compiled"} <= set(done) else None,
              "machine": {"host": platform.node(), "python": platform.python_version()},
              "command": " ".join(sys.argv)}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
