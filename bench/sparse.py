"""A scene against the same scene inside a side² scene that is otherwise empty: the bundle path's cost follows the
valid area, not the extent.

Both go through what ``geofoundry predict --bundle`` runs: ``predict_scene`` on the whole scene (no area: the
scene's valid extent, from its mask's blocks) and the postprocess stage's ``run`` with the default chain. The sparse
copy holds the scene's pixels in one block-aligned window near its centre; its other blocks, image and mask, are
never written (sparse GeoTIFF: no bytes, read as invalid). Each runs in its own process with the same random
weights; peak RSS is that process's own high-water mark (``peak_rss``).

    python bench/sparse.py --scene ../shared/data/oam_buildings_eafrica_scenes/images/kampala_ug_z19.tif --side 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rasterio
import yaml
from affine import Affine
from peak_rss import peak_rss_gb
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
RGB = ["red", "green", "blue"]


def sparse_copy(src: Path, dst: Path, side: int) -> None:
    """``src`` at a block-aligned window near the centre of a ``side``² tiled GeoTIFF; nothing else written."""
    with rasterio.open(src) as ds:
        data, mask, profile = ds.read(), ds.dataset_mask(), ds.profile
    at = side // 2 // 512 * 512
    profile.update(width=side, height=side, compress="deflate", photometric="rgb", sparse_ok=True, BIGTIFF="YES",
                   tiled=True, blockxsize=512, blockysize=512,
                   transform=profile["transform"] @ Affine.translation(-at, -at))
    profile.pop("jpeg_quality", None)
    window = Window(at, at, data.shape[2], data.shape[1])
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(dst, "w", **profile) as out:
        out.write(data, window=window)
        out.write_mask(mask, window=window)


def part(args) -> dict:
    import torch

    from geofoundry.config import PostprocessConfig, PredictConfig
    from geofoundry.delivery.scene import scene_gsd_m
    from geofoundry.models.deployed import DeployedModel
    from geofoundry.models.input_spec import InputSpec
    from geofoundry.models.registry import build_model
    from geofoundry.postprocess import run as postprocess
    from geofoundry.predict.run import predict_scene
    from geofoundry.predict.torch_model import torch_model_fn

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = torch_model_fn(DeployedModel(build_model("unet", 3, 2), [0.0] * 3, [255.0] * 3), "cpu")
    with rasterio.open(args.scene) as ds:
        gsd, shape = scene_gsd_m(ds), ds.shape
    spec = InputSpec(bands=RGB, gsd_m=gsd, source_dtype="uint8", low=[0.0] * 3, high=[255.0] * 3,
                     classes=["background", "building"], class_paths=[None, "structure/building"])
    steps = yaml.safe_load((ROOT / "params.yaml").read_text())["postprocess"]
    out = Path(args.out)
    t0 = time.perf_counter()
    predict_scene(str(args.scene), RGB, gsd, None, spec, model, PredictConfig(tile=512, overlap=64, batch_size=4),
                  out / "maps" / "scene.tif")
    t1 = time.perf_counter()
    summary = postprocess(PostprocessConfig(**steps), out / "maps", out / "vectors", ["building"])
    t2 = time.perf_counter()
    with rasterio.open(out / "maps" / "scene.tif") as ds:
        map_px = ds.width * ds.height
    return {"scene_px": shape[0] * shape[1], "map_px": map_px, "objects": summary["objects"],
            "predict_s": round(t1 - t0, 2), "postprocess_s": round(t2 - t1, 2), "peak_rss_gb": round(peak_rss_gb(), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", type=Path, required=True)
    ap.add_argument("--side", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--part", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        print(json.dumps(part(args)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        sparse = Path(tmp) / "sparse.tif"
        sparse_copy(args.scene, sparse, args.side)
        for name, scene in (("scene", args.scene), (f"sparse {args.side}²", sparse)):
            out = Path(tmp) / name.split()[0]
            proc = subprocess.run([sys.executable, __file__, "--part", "--scene", str(scene), "--out", str(out),
                                   "--seed", str(args.seed), "--threads", str(args.threads)],
                                  capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(proc.stderr[-3000:])
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    a, b = results.values()
    ratios = {k: round(b[k] / a[k], 2) for k in ("predict_s", "postprocess_s", "peak_rss_gb")}
    print(json.dumps({"machine": platform.node(), "cpus": len(os.sched_getaffinity(0)),
                      "parts": results, "sparse / scene": ratios}, indent=2))


if __name__ == "__main__":
    main()
