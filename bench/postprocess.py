"""Post-process stage memory and time on synthetic probability maps of growing size.

    python bench/postprocess.py --sides 4000 8000 16000              # postprocess.window_px 4096, 2 workers
    python bench/postprocess.py --sides 4000 8000 16000 --workers 1  # one window at a time
    python bench/postprocess.py --sides 4000 8000 16000 --window 0   # whole scenes in memory

Each map (EPSG:3857, 0.3 m, one band p(building), ¾ valid) holds one 8×8 m "building" of probability 0.9 every
20 m on noise below 0.3, written with the predict stage's COG writer. Each side runs the default chain of
params.yaml (``postprocess.steps``) in a fresh process; peak RSS is that process's own high-water mark
(``peak_rss``). Bytes per pixel show how memory grows with the scene.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from peak_rss import peak_rss_gb

ROOT = Path(__file__).resolve().parents[1]
PIXEL_M, PERIOD_PX, SIZE_PX, ROWS = 0.3, 66, 27, 512


def synthetic_map(path: Path, side: int) -> None:
    """Write the map strip by strip."""
    import rasterio

    from geofoundry.predict.sliding import Rows, Strip
    from geofoundry.predict.writer import ProbabilityWriter

    rng = np.random.default_rng(0)
    cols = np.arange(side)
    in_x = (cols % PERIOD_PX) < SIZE_PX
    wanted = np.broadcast_to(cols >= side // 4, (ROWS, side))
    crs = rasterio.crs.CRS.from_epsg(3857)
    transform = rasterio.transform.from_origin(3_600_000, 40_000, PIXEL_M, PIXEL_M)
    with ProbabilityWriter(path, crs, transform, side, side, ["building"], overviews=False) as writer:
        for top in range(0, side, ROWS):
            n = min(ROWS, side - top)
            rows = np.arange(top, top + n)
            blobs = ((rows % PERIOD_PX) < SIZE_PX)[:, None] & in_x[None, :]
            p = np.where(blobs, 230, rng.integers(0, 76, (n, side))).astype(np.uint8) * wanted[:n]
            writer.write(Strip(Rows(top, n, p[None], np.packbits(wanted[:n], axis=-1)), []))


def part(args) -> dict:
    from geofoundry.config import PostprocessConfig
    from geofoundry.postprocess.run import run

    steps = yaml.safe_load((ROOT / "params.yaml").read_text())["postprocess"]["steps"]
    steps += yaml.safe_load(args.extra_steps)
    t0 = time.perf_counter()
    cfg = PostprocessConfig(steps=steps, window_px=args.window, workers=args.workers)
    result = run(cfg, args.maps, args.maps / "vectors", ["building"])
    return {"seconds": time.perf_counter() - t0, "objects": result["objects"],
            "peak_rss_gb": peak_rss_gb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[4000, 8000, 16000])
    ap.add_argument("--window", type=int, default=4096, help="postprocess.window_px (0 = whole scenes)")
    ap.add_argument("--workers", type=int, default=2, help="postprocess.workers")
    ap.add_argument("--extra-steps", default="[]",
                    help="YAML list of steps appended to params.yaml's, e.g. '[{drop_border_touching: {}}]'")
    ap.add_argument("--maps", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.maps:
        print(json.dumps(part(args)))
        return
    rows = []
    for side in args.sides:
        with tempfile.TemporaryDirectory() as tmp:
            maps = Path(tmp)
            synthetic_map(maps / f"synthetic_{side}.tif", side)
            out = subprocess.run([sys.executable, __file__, "--maps", str(maps), "--window", str(args.window),
                                  "--workers", str(args.workers), "--extra-steps", args.extra_steps],
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"side": side, "window_px": args.window, "workers": args.workers, "extra_steps": args.extra_steps,
                     "megapixels": side * side / 1e6, **r,
                     "bytes_per_pixel": round(r["peak_rss_gb"] * 2**30 / side**2, 1)})
        print(json.dumps(rows[-1]), flush=True)
    result = {"rows": rows, "machine": {"host": platform.node(), "python": platform.python_version()},
              "command": " ".join(sys.argv)}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
