"""CPU latency and throughput of the delivered model: onnxruntime and the AOTInductor package (the compiled engine,
float32) against PyTorch eager, same threads, same input.

    python bench/export.py [--arch unet] [--checkpoint models/best.pt] [--threads 2] [--sizes 1x512,4x256] [--json out]

Raw band values in, probabilities out (the deployed model, stretch and softmax inside) for every runtime; the package
is compiled per size (fixed tile, that batch at most), its compile time reported. Weights do not change the timing,
so without --checkpoint a preset with random weights is used. Prints a Markdown table for BENCHMARKS.md. (The GPU
part, AOTInductor against eager bf16 on the H200, is a separate benchmark.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from geofoundry.export.onnx_export import INPUT, export_onnx  # noqa: E402
from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from geofoundry.models.compiled import compile_package, load_package  # noqa: E402
from geofoundry.models.deployed import DeployedModel  # noqa: E402
from geofoundry.models.registry import build_model  # noqa: E402


def timed(fn, x, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn(x)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--bands", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="1x512,4x256", help="comma-separated BATCHxSIDE")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        net, bands, arch = model_from_checkpoint(ckpt), len(ckpt["bands"]), ckpt["preset"]
    else:
        net, bands, arch = build_model(args.arch, args.bands, 2).eval(), args.bands, args.arch
    model = DeployedModel(net, [0.0] * bands, [255.0] * bands).eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    rows, compile_s = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, bands, onnx_path, 17, {})
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        for size in args.sizes.split(","):
            batch, side = map(int, size.split("x"))
            x = np.random.default_rng(0).uniform(0, 255, (batch, bands, side, side)).astype(np.float32)
            with torch.inference_mode():
                eager = timed(lambda a: model(torch.from_numpy(a)), x, args.repeats)
            onnx = timed(lambda a: session.run(None, {INPUT: a}), x, args.repeats)
            package = Path(tmp) / f"model-{size}.pt2"
            record = compile_package(model, package, tile=side, max_batch=batch, device="cpu")
            compile_s[size] = record["compile_seconds"]
            runner = load_package(package, single_threaded=False)
            with torch.inference_mode():
                compiled = timed(lambda a: runner(torch.from_numpy(a)), x, args.repeats)
            for name, times in (("torch eager", eager), ("onnxruntime", onnx), ("compiled package", compiled)):
                med = statistics.median(times)
                rows.append({"runtime": name, "batch": batch, "side": side, "median_ms": round(med * 1e3, 1),
                             "p90_ms": round(sorted(times)[int(0.9 * (len(times) - 1))] * 1e3, 1),
                             "img_per_s": round(batch / med, 2), "mpix_per_s": round(batch * side**2 / med / 1e6, 2)})
    env = {"arch": arch, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
           "torch": torch.__version__, "onnxruntime": ort.__version__, "repeats": args.repeats,
           "compile_seconds": compile_s}
    print(f"CPU, {args.threads} threads, {arch}, {bands} bands "
          f"(torch {env['torch']}, onnxruntime {env['onnxruntime']})")
    print("| runtime | batch × side | median ms | p90 ms | images/s | Mpixel/s |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runtime']} | {r['batch']} × {r['side']}² | {r['median_ms']} | {r['p90_ms']} | {r['img_per_s']} "
              f"| {r['mpix_per_s']} |")
    print("package compile seconds:", ", ".join(f"{k}: {v}" for k, v in compile_s.items()))
    if args.json:
        args.json.write_text(json.dumps({"env": env, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
