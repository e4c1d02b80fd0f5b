"""Dashboard response times over HTTP on 127.0.0.1: live counts on a synthetic catalog of 100k blocks, imagery
tiles of a real DEV scene, and the compare page's experiments table with ``--experiments`` DVC experiments.

The catalog has the schema of `geofoundry catalog`'s (scene footprints; (scene, block) rows with contexts and
``count:<class path>`` at every level of a 3-level hierarchy), ``--sites`` sites of ``--scenes-per-site`` scenes of
``--cells`` grid cells each, every scene over its own ground (the worst case for the split: 100k rows are 100k
blocks to share out). It is installed as the catalog of a project whose raw dataset is DEV, so that the tiles come
from DEV's real GeoTIFFs. The dashboard runs in a child process (uvicorn, as `geofoundry dashboard` serves it); the
client sends each query once (no cache hit): a class, a context range, sites, a geofence, all four. The project is
also a DVC repository whose experiments are made with git plumbing (bench/dashboard_experiments.py).

    python bench/dashboard.py                          # print the table
    python bench/dashboard.py --write BENCHMARKS.md    # and store it in the "Dashboard" section
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import geopandas as gpd
import morecantile
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dashboard_experiments import cold_collection, make_repo, measure  # noqa: E402
DEV = ROOT.parent / "shared" / "data" / "oam_buildings_eafrica_scenes"
PATHS = ["structure", "structure/building", "structure/building/residential", "structure/building/industrial",
         "vehicle", "vehicle/car", "vehicle/truck"]
LEAVES = {"structure/building/residential": 2.0, "structure/building/industrial": 0.4, "vehicle/car": 1.5,
          "vehicle/truck": 0.3}


def synthetic_catalog(sites: int, scenes_per_site: int, cells: int, size: float, seed: int = 0):
    """(scenes, blocks) GeoDataFrames in EPSG:3857 shaped like the catalog's."""
    from geofoundry.io.grid import block_id, cell_polygon

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(cells)))
    scene_rows, block_frames = [], []
    for s in range(sites):
        lon, lat = rng.uniform(-20, 50), rng.uniform(-30, 40)
        for k in range(scenes_per_site):
            x0 = int((lon * 111_320 + k * (side + 2) * size) // size)
            y0 = int((lat * 111_320) // size)
            ix = x0 + np.arange(cells) % side
            iy = y0 + np.arange(cells) // side
            sid = f"site{s:03d}_scene{k}"
            gsd = float(rng.choice([0.075, 0.15, 0.3, 0.5]))
            veg = rng.beta(1.2, 2.5, cells)
            frame = pd.DataFrame({
                "block_id": [block_id(a, b) for a, b in zip(ix, iy)], "ix": ix, "iy": iy,
                "valid_area_m2": np.where(rng.random(cells) < 0.8, size * size, rng.uniform(500, size * size, cells)),
                "nodata": rng.beta(0.5, 4, cells), "vegetation": veg, "bright": rng.beta(0.6, 8, cells),
                "cloud_haze": rng.beta(0.4, 10, cells), "water": np.nan,
            })
            leaves = {p: rng.poisson(lam * (1 - veg)) for p, lam in LEAVES.items()}
            frame["count:structure/building/residential"] = leaves["structure/building/residential"]
            frame["count:structure/building/industrial"] = leaves["structure/building/industrial"]
            frame["count:structure/building"] = frame["count:structure/building/residential"] + \
                frame["count:structure/building/industrial"]
            frame["count:structure"] = frame["count:structure/building"]
            frame["count:vehicle/car"] = leaves["vehicle/car"]
            frame["count:vehicle/truck"] = leaves["vehicle/truck"]
            frame["count:vehicle"] = frame["count:vehicle/car"] + frame["count:vehicle/truck"]
            for col, value in (("scene_id", sid), ("site", f"site{s:03d}"), ("sensor", "aerial-rgb"), ("gsd_m", gsd),
                               ("acquired", f"20{18 + k % 6}-0{1 + s % 9}-15"), ("band_names", "red|green|blue"),
                               ("group", f"site{s:03d}")):
                frame[col] = value
            frame = gpd.GeoDataFrame(frame, geometry=[cell_polygon(a, b, size) for a, b in zip(ix, iy)],
                                     crs="EPSG:3857")
            block_frames.append(frame)
            footprint = shapely.box(x0 * size, y0 * size, (x0 + side) * size, (y0 + side) * size)
            rec = {"scene_id": sid, "site": f"site{s:03d}", "country": "XX", "sensor": "aerial-rgb", "gsd_m": gsd,
                   "acquired": frame["acquired"].iloc[0], "crs": "EPSG:3857", "width": 10_000, "height": 10_000,
                   "bands": 3, "dtype": "uint8", "band_names": "red|green|blue", "nodata_value": None,
                   "group": f"site{s:03d}", "valid_area_m2": float(frame["valid_area_m2"].sum()), "blocks": cells,
                   "objects": int(frame["count:structure"].sum() + frame["count:vehicle"].sum()),
                   "vegetation": float(veg.mean()), "bright": 0.02, "cloud_haze": 0.01, "water": np.nan,
                   "nodata": float(frame["nodata"].mean()),
                   **{f"count:{p}": int(frame[f"count:{p}"].sum()) for p in PATHS}, "geometry": footprint}
            scene_rows.append(rec)
    scenes = gpd.GeoDataFrame(scene_rows, geometry="geometry", crs="EPSG:3857")
    return scenes, gpd.GeoDataFrame(pd.concat(block_frames, ignore_index=True), crs="EPSG:3857")


def make_project(work: Path, args) -> Path:
    """A project whose raw dataset is DEV and whose catalog (data/catalog) is the synthetic one."""
    from geofoundry.catalog.build import catalog_key, write_geoparquet
    from geofoundry.config import SelectConfig
    from geofoundry.io.atomic import write_json

    root = work / "project"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    (root / "data" / "raw").symlink_to(DEV.resolve())
    cfg = SelectConfig()
    scenes, blocks = synthetic_catalog(args.sites, args.scenes_per_site, args.cells, cfg.split.block_size_m)
    out = root / "data" / "catalog"
    out.mkdir()
    write_geoparquet(scenes, out / "scenes.parquet")
    write_geoparquet(blocks, out / "blocks.parquet")
    write_json(out / "catalog.json", catalog_key(root / "data" / "raw", cfg.split.block_size_m, cfg.context_gsd_m))
    return root


def serve(root: Path, port: int) -> None:
    """The child process: `geofoundry dashboard` for the project at ``root`` (all scenes, no gsd filter)."""
    os.chdir(root)
    from geofoundry.pipeline.cli import app

    sys.argv = ["geofoundry", "dashboard", "--port", str(port)]
    app()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> tuple[float, dict, float | None]:
    """Milliseconds of the request, its JSON, and the server's CPU milliseconds (Server-Timing ``cpu``) if given."""
    t = time.perf_counter()
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as res:
        data = json.loads(res.read())
        return (time.perf_counter() - t) * 1000, data, server_cpu(res.headers)


def server_cpu(headers) -> float | None:
    """The ``cpu`` entry of a Server-Timing header, in ms."""
    timing = dict(p.strip().split(";dur=") for p in (headers.get("Server-Timing") or "").split(",") if ";dur=" in p)
    return float(timing["cpu"]) if "cpu" in timing else None


def get(url: str) -> tuple[float, int, int, float | None]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as res:
        n = len(res.read())
        return (time.perf_counter() - t) * 1000, res.status, n, server_cpu(res.headers)


def queries(i: int, sites: list[str], fence: str) -> dict[str, dict]:
    """Distinct queries of each kind (the i-th variant), every one over all GSDs."""
    base = {"gsd_range": [0, 10]}
    veg = [0.0, round(0.5 + 0.004 * i, 4)]
    return {
        "class": {**base, "classes": ["structure/building/residential" if i % 2 else "vehicle", "structure"]},
        "context": {**base, "contexts": {"vegetation": veg}},
        "sites": {**base, "sites": sites[i % 7::3]},
        "geofence": {**base, "geofence": {"include": fence, "exclude": None}, "min_valid_frac": 0.001 * i},
        "all four": {**base, "classes": ["structure/building"], "contexts": {"vegetation": veg, "cloud_haze": [0, 0.3]},
                     "sites": sites[i % 5::2], "geofence": {"include": fence, "exclude": None}},
    }


def tile_urls(url: str, scene: str, n: int, rng) -> list[str]:
    from rio_tiler.io import Reader

    with Reader(str(DEV / "images" / f"{scene}.tif")) as r:
        bounds, top = r.get_geographic_bounds("EPSG:4326"), r.maxzoom
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = [t for z in range(top - 3, top + 1) for t in tms.tiles(*bounds, zooms=[z])]
    picked = rng.choice(len(tiles), size=min(n, len(tiles)), replace=False)
    return [f"{url}/tiles/scene/{scene}/{tiles[i].z}/{tiles[i].x}/{tiles[i].y}.png" for i in picked]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def write_section(path: Path, body: str) -> None:
    """Replace (or append) the ``## Dashboard`` section of BENCHMARKS.md."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Dashboard")
    end = text.find("\n## ", start + 1) if start >= 0 else -1
    section = f"## Dashboard\n\n{body}\n"
    text = text.rstrip() + "\n\n" + section if start < 0 else \
        text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--scenes-per-site", type=int, default=4)
    ap.add_argument("--cells", type=int, default=250, help="grid cells per scene")
    ap.add_argument("--requests", type=int, default=25, help="requests of each query kind")
    ap.add_argument("--tiles", type=int, default=120, help="tile requests")
    ap.add_argument("--scene", default="zanzibar_tz_z21", help="DEV scene of the tile requests")
    ap.add_argument("--experiments", type=int, default=200, help="DVC experiments in the compare page's table")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "geofoundry-bench-dashboard")
    ap.add_argument("--write", type=Path, help="store the results in this markdown file (Dashboard section)")
    args = ap.parse_args()

    root = make_project(args.workdir, args)
    make_repo(root, args.experiments)
    cold = cold_collection(root)
    scenes = gpd.read_parquet(root / "data" / "catalog" / "scenes.parquet")
    n_rows = len(pd.read_parquet(root / "data" / "catalog" / "blocks.parquet", columns=["ix"]))
    sites = sorted(scenes["site"].unique())
    w, s, e, n = scenes.to_crs("EPSG:4326").total_bounds
    fence = shapely.box(w, s, w + 0.5 * (e - w), s + 0.6 * (n - s)).wkt
    port = free_port()
    child = mp.get_context("spawn").Process(target=serve, args=(root, port), daemon=True)
    t0 = time.perf_counter()
    child.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                get(f"{url}/api/data/catalog")
                break
            except OSError:
                time.sleep(0.5)
        startup = time.perf_counter() - t0
        times: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        blocks_ms, selected = [], []
        for i in range(args.requests):
            for kind, q in queries(i, sites, fence).items():
                ms, data, cpu = post(f"{url}/api/data/query", {"select": q})
                assert data.get("ok"), (kind, data)
                times.setdefault(kind, []).append(ms)
                cpus.setdefault(kind, []).append(cpu)
                selected.append(data["totals"]["blocks"])
                if kind == "all four" or i % 5 == 0:
                    blocks_ms.append(post(f"{url}/api/data/blocks", {"select": q})[0])
        load = os.getloadavg()[0]
        rng = np.random.default_rng(0)
        tile_ms, tile_cpu, sizes = [], [], []
        for u in tile_urls(url, args.scene, args.tiles, rng):
            ms, status, size, cpu = get(u)
            tile_ms.append(ms)
            tile_cpu.append(cpu)
            if status == 200:
                sizes.append(size)
        compare_rows = measure(url, root, args.experiments, cold, get, pct, args.requests)
    finally:
        child.terminate()
        child.join(10)

    lines = [f"Command: `python bench/dashboard.py --write BENCHMARKS.md` ({time.strftime('%Y-%m-%d')}).  ",
             f"Machine: 2-core {platform.machine()} CPU, Python "
             f"{platform.python_version()}; server (uvicorn, one process) and client share the 2 cores, with other "
             f"work running (load average {load:.1f} at the end of the counts). The server's CPU time per request "
             "(its `Server-Timing: cpu` header: the thread that ran the query) approximates its time on idle cores.",
             "",
             f"Catalog: {len(scenes)} scenes, {n_rows:,} (scene, block) rows = {n_rows:,} blocks "
             f"({args.sites} sites); start-up {startup:.1f} s (load, first query, compile). Counts: `POST "
             f"/api/data/query`, {args.requests} distinct requests of each kind (filters, geofence clip, merge, split "
             "of the selected blocks, summary, context histograms, objects per class level).",
             "",
             f"Compare page: the project is a DVC repository (this repository's dvc.yaml, dvc.lock, params.yaml and "
             f"metrics) with {args.experiments} experiments made by `git fast-import` (bench/dashboard_experiments.py"
             f"); {args.requests} requests of the page and of its table, after the dashboard's first collection. "
             "DVC's first collection of commits never seen is what a first start costs; what it read is then kept "
             "by commit.",
             "",
             "| request | blocks selected (median) / experiments | median (ms) | p95 (ms) | server CPU median / p95 "
             "(ms) |",
             "|---|---|---|---|---|"]
    per_kind = len(selected) // len(times)
    for j, (kind, ms) in enumerate(times.items()):
        sel = [selected[i * len(times) + j] for i in range(per_kind)]
        cpu = cpus[kind]
        lines.append(f"| counts: {kind} | {int(statistics.median(sel)):,} | {statistics.median(ms):.0f} | "
                     f"{pct(ms, 95):.0f} | {statistics.median(cpu):.0f} / {pct(cpu, 95):.0f} |")
    lines.append(f"| map blocks (`/api/data/blocks`, cached query) | | {statistics.median(blocks_ms):.0f} | "
                 f"{pct(blocks_ms, 95):.0f} | |")
    lines.append(f"| imagery tile, {args.scene} (z{{max-3..max}}, {len(tile_ms)} tiles, {len(sizes)} with "
                 f"pixels) | | {statistics.median(tile_ms):.0f} | {pct(tile_ms, 95):.0f} | "
                 f"{statistics.median(tile_cpu):.0f} / {pct(tile_cpu, 95):.0f} |")
    lines += compare_rows
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(args.write, body)


if __name__ == "__main__":
    main()
