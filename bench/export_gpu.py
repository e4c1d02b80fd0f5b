"""GPU: the AOTInductor package (.pt2) against eager bf16 PyTorch, same model, same input, in one run.

    python bench/export_gpu.py --arch unet --batch 16 --side 512 --out aoti.json

Reports parity (max |Δp|, mask agreement) and throughput (images/s, median of repeats). Needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from geofoundry.models.compiled import compile_package, load_package
from geofoundry.models.deployed import DeployedModel
from geofoundry.models.registry import build_model


def throughput(fn, x: torch.Tensor, repeats: int) -> float:
    for _ in range(3):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return len(x) / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--bands", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = DeployedModel(build_model(a.arch, a.bands, 2), [0.0] * a.bands, [255.0] * a.bands).cuda().eval()
    x = torch.rand(a.batch, a.bands, a.side, a.side, device="cuda") * 255
    with torch.inference_mode():
        eager = lambda t: model(t)  # noqa: E731
        with torch.autocast("cuda", dtype=torch.bfloat16):
            ref = eager(x).float()
            eager_ips = throughput(eager, x, a.repeats)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            path = Path(tmp) / "model.pt2"
            compile_package(model, path, tile=None, max_batch=64, device="cuda")
            compile_s = time.perf_counter() - t0
            size_mb = path.stat().st_size / 2**20
            compiled = load_package(path)
            got = compiled(x)
            aoti_ips = throughput(compiled, x, a.repeats)
    result = {"arch": a.arch, "batch": a.batch, "side": a.side, "precision": "bf16",
              "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "host": platform.node(),
              "eager_images_per_s": round(eager_ips, 1), "aoti_images_per_s": round(aoti_ips, 1),
              "speedup": round(aoti_ips / eager_ips, 3), "compile_s": round(compile_s, 1),
              "package_mb": round(size_mb, 1),
              "max_abs_diff": float((got - ref).abs().max()),
              "mask_agreement": float((got.argmax(1) == ref.argmax(1)).float().mean())}
    print(json.dumps(result, indent=1))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
