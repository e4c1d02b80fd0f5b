"""Benchmark select + preprocess: wall time and peak RSS on the largest DEV scene and on a synthetic 40000² scene.

    python bench/preprocess.py                       # both cases, print a table
    python bench/preprocess.py --write BENCHMARKS.md # and store it in the "Preprocess" section

Each case runs in a fresh child process; its peak RSS is that child's own high-water mark (``peak_rss``).
The synthetic scene (EPSG:3857, 0.3 m, 3-band uint8, JPEG 512² tiles, internal mask of tile clusters ≈ 15 % valid,
overviews, ~3000 square "buildings") is generated once, strip by strip, under --workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from peak_rss import peak_rss_gb

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "oam_buildings_eafrica_scenes"
SIDE, TILE, PIXEL_M = 40_000, 512, 0.3
NOTE = ('Each case runs select (scan: footprint, contexts at 1 m, labels) then preprocess (stretch fit, chip '
        "plan, chip write; 256² chips, stride 192) in a fresh process. Peak RSS is that process's own high-wa"
        "ter mark (VmHWM). GDAL's block cache is capped at 256 MB. The 2 cores were shared with a running tra"
        'ining (load average about 6), so the times are upper bounds. On the synthetic scene, select (150 s) '
        'takes most of the time; which part of it has not been profiled.')
CASES = {  # name: (scene id, preprocess.gsd_m)
    "dev_z21_to_0.3m": ("zanzibar_tz_z21", 0.3),
    "dev_z21_native": ("zanzibar_tz_z21", 0.0742),
    "synthetic_40000_native": ("synthetic_40k", 0.3),
}


def make_synthetic(root: Path, seed: int = 0) -> None:
    """A raw dataset with one 40000 × 40000 scene, written strip by strip (bounded memory)."""
    import geopandas as gpd
    import pandas as pd
    import shapely
    from affine import Affine
    from scipy.ndimage import zoom

    if (root / "scenes.csv").exists():
        return
    rng = np.random.default_rng(seed)
    n = SIDE // TILE + 1
    field = zoom(rng.normal(size=(n // 8 + 2, n // 8 + 2)), 8, order=1)[:n, :n]
    valid_tiles = field > np.quantile(field, 0.85)  # clusters of tiles, ~15 % valid like the DEV scenes
    x0, y0 = 3_900_000.0, -150_000.0  # EPSG:3857 near the equator: 0.3 m pixels ≈ 0.3 m on the ground
    t = Affine(PIXEL_M, 0, x0, 0, -PIXEL_M, y0)
    rows, cols = np.nonzero(valid_tiles)
    pick = rng.integers(0, len(rows), 3000)
    r = rows[pick] * TILE + rng.integers(20, TILE - 80, 3000)
    c = cols[pick] * TILE + rng.integers(20, TILE - 80, 3000)
    s = rng.integers(30, 60, 3000)
    keep = (r + s < SIDE) & (c + s < SIDE)
    r, c, s = r[keep], c[keep], s[keep]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    path = root / "images" / "synthetic_40k.tif"
    if not path.exists():
        write_image(path, t, valid_tiles, r, c, s, rng)
    boxes = [shapely.box(*(t * (ci, ri + si)), *(t * (ci + si, ri))) for ri, ci, si in zip(r, c, s)]
    labels = gpd.GeoDataFrame({"class": ["building"] * len(boxes), "class_path": ["structure/building"] * len(boxes)},
                              geometry=boxes, crs="EPSG:3857").to_crs("EPSG:4326")
    labels.to_file(root / "labels" / "synthetic_40k.geojson", driver="GeoJSON")
    pd.DataFrame([{"scene_id": "synthetic_40k", "image": "images/synthetic_40k.tif",
                   "labels": "labels/synthetic_40k.geojson", "site": "synthetic", "country": "XX",
                   "sensor": "synthetic-rgb", "gsd_m": PIXEL_M, "acquired": "", "crs": "EPSG:3857", "width": SIDE,
                   "height": SIDE, "bands": 3, "dtype": "uint8", "band_names": "red|green|blue", "nodata": "",
                   "group": "synthetic"}]).to_csv(root / "scenes.csv", index=False)


def write_image(path: Path, t, valid_tiles: np.ndarray, r, c, s, rng) -> None:
    """The synthetic scene, strip by strip: smooth texture + noise, bright squares, tile-cluster mask, overviews."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=SIDE, height=SIDE, count=3, dtype="uint8", crs="EPSG:3857", transform=t,
                   tiled=True, blockxsize=TILE, blockysize=TILE, compress="jpeg", photometric="ycbcr",
                   jpeg_quality=90, bigtiff="yes")
    tmp = path.with_suffix(".part.tif")
    xx = np.arange(SIDE, dtype=np.float32)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(tmp, "w", **profile) as ds:
        for r0 in range(0, SIDE, TILE):
            h = min(TILE, SIDE - r0)
            yy = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            base = 90 + 40 * np.sin(xx / 700.0) * np.cos(yy / 900.0) + rng.normal(0, 8, (h, SIDE)).astype(np.float32)
            img = np.stack([base, base * 1.1, base * 0.8])
            for i in np.nonzero((r < r0 + h) & (r + s > r0))[0]:
                img[:, max(r[i], r0) - r0:min(r[i] + s[i], r0 + h) - r0, c[i]:c[i] + s[i]] = 220
            ds.write(np.clip(img, 0, 255).astype(np.uint8), window=Window(0, r0, SIDE, h))
            mask = np.repeat(np.repeat(valid_tiles[r0 // TILE:r0 // TILE + 1], TILE, axis=1)[:, :SIDE], h, axis=0)
            ds.write_mask((mask * 255).astype(np.uint8), window=Window(0, r0, SIDE, h))
        ds.build_overviews([2, 4, 8, 16, 32, 64], Resampling.average)
    tmp.rename(path)


def raw_for(case: str, work: Path) -> Path:
    scene_id, _ = CASES[case]
    if scene_id == "synthetic_40k":
        make_synthetic(work / "raw_synthetic")
        return work / "raw_synthetic"
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import copy_subset  # the tests' real-data subset helper

    root = work / f"raw_{scene_id}"
    if not (root / "scenes.csv").exists():
        shutil.rmtree(root, ignore_errors=True)
        copy_subset(DEV, root, [scene_id])
    return root


def run_case(case: str, work: Path) -> dict:
    """In the child: select then preprocess one case; return timings and chip counts."""
    from geofoundry.config import PreprocessConfig, SelectConfig
    from geofoundry.preprocess import run as preprocess_run
    from geofoundry.select import run as select_run

    raw = raw_for(case, work)
    out = work / f"out_{case}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    select_run(SelectConfig(gsd_range=(0, 10)), raw, out / "selection", out / "select.json")
    t1 = time.perf_counter()
    summary = preprocess_run(PreprocessConfig(gsd_m=CASES[case][1]), out / "selection", out / "chips")
    t2 = time.perf_counter()
    size = sum(f.stat().st_size for f in (out / "chips").rglob("*.npy"))
    shutil.rmtree(out, ignore_errors=True)
    return {"select_s": round(t1 - t0, 1), "preprocess_s": round(t2 - t1, 1), "chips": summary, "chips_gb": size / 1e9,
            "peak_rss_gb": peak_rss_gb()}


def measure(case: str, work: Path) -> dict:
    """Run a case in a fresh child and read its peak RSS from the kernel."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
    raw_for(case, work)  # generate data outside the measured child
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", case, "--workdir", str(work)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = proc.stdout.read()
    status = proc.wait()
    if status:
        raise SystemExit(f"{case}: child failed with status {status}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return {"case": case, "wall_s": round(time.perf_counter() - t0, 1), **result}


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))) / 2**20
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def table(results: list[dict]) -> str:
    lines = ["| case | select (s) | preprocess (s) | total wall (s) | train / val chips | chips on disk (GB) | "
             "peak RSS (GiB) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["chips"]
        lines.append(f"| {r['case']} | {r['select_s']} | {r['preprocess_s']} | {r['wall_s']} | "
                     f"{c.get('train', {}).get('chips', 0)} / {c.get('val', {}).get('chips', 0)} | "
                     f"{r['chips_gb']:.2f} | {r['peak_rss_gb']:.2f} |")
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace (or append) the ``## Preprocess`` section of BENCHMARKS.md."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Preprocess")
    end = text.find("\n## ", start + 1) if start >= 0 else -1
    section = f"## Preprocess\n\n{body}\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/geofoundry-bench"))
    ap.add_argument("--write", type=Path, help="store the results in this markdown file (Preprocess section)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(run_case(args.child, args.workdir)))
        return
    results = [measure(c, args.workdir) for c in args.cases.split(",")]
    body = (f"Command: `python bench/preprocess.py --write BENCHMARKS.md` ({time.strftime('%Y-%m-%d')}).  \n"
            f"Machine: {machine()}.\n\n{table(results)}\n\n{NOTE}\n")
    print(body)
    if args.write:
        write_section(args.write, body)


if __name__ == "__main__":
    main()
