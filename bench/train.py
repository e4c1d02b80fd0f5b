"""Train-stage throughput against a bare segmentation_models_pytorch loop, in one run.

* stage: ``geofoundry.train`` as the stage runs it — real chips (memory-mapped), the seeded sampler, the
  DataLoader (workers, pinned memory, prefetch), the params' augmentations (albumentations in the workers,
  ``device_augment`` on the batch) and target, and ``train_epoch`` (uint8 → device, bf16 autocast on CUDA,
  channels_last, loss, AdamW, schedule);
* bare: the same preset, batch, input size, loss and optimiser on GPU-resident random tensors, nothing else.

Both time ``--steps`` optimiser steps after a warm-up (the stage: one full epoch, so workers, cuDNN autotuning
and ``torch.compile`` are warm). Validation is left out of both. Prints and writes the ratio stage/bare
(``--repeat``: of the medians of alternated runs).

    python bench/train.py --out bench-train.json                        # CUDA; params.yaml and data/chips
    python bench/train.py --workers 12 --batch 32 --compile --out b.json
    python bench/train.py --device cpu --steps 3 --batch 2 --size 64 --out /tmp/b.json   # CPU smoke check
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("geofoundry") is None:
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from geofoundry.models import build_model  # noqa: E402
from geofoundry.params import load_params  # noqa: E402
from geofoundry.train.device import setup  # noqa: E402
from geofoundry.train.loop import train_epoch  # noqa: E402
from geofoundry.train.losses import WeightedLoss  # noqa: E402
from geofoundry.train.run import prepare  # noqa: E402
from geofoundry.train.state import seed_epoch  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage(cfg, arch: str, chips: Path) -> tuple[float, tuple[int, int, int], int, str]:
    """Images/s of the stage's second epoch (the first one warms up), input shape, classes and device.

    As the stage does: one DataLoader iterator over both epochs, so the workers prefetch across the epoch end.
    """
    rt = setup(cfg.device, cfg.threads)
    job = prepare(cfg, arch, chips, rt)
    shape = tuple(job.loader.dataset[(0, 0)][0].shape)
    job.sampler.set_epochs(0, 2)
    batches, seconds = iter(job.loader), 0.0
    for epoch in range(2):
        seed_epoch(cfg.seed, epoch, rt.rank)
        sync(rt.device)
        t0 = time.perf_counter()
        _, n = train_epoch(job.net, batches, job.sampler.steps, job.loss_fn, job.optimizer, job.scheduler, rt,
                           cfg.grad_accum, cfg.device_augment)
        sync(rt.device)
        seconds = time.perf_counter() - t0
    n_classes = len(job.target.names(job.spec.classes))
    del job, batches  # the workers end
    return n / seconds, shape, n_classes, rt.device.type


def bare(cfg, arch: str, shape: tuple[int, int, int], n_classes: int, steps: int, warmup: int) -> float:
    """Images/s of forward + loss + backward + AdamW on GPU-resident tensors (bf16 autocast on CUDA)."""
    rt = setup(cfg.device, cfg.threads)
    model = build_model(arch, shape[0], n_classes).to(rt.device, memory_format=torch.channels_last)
    net = torch.compile(model) if cfg.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = WeightedLoss(cfg.loss, 255)
    x = torch.rand(cfg.batch_size, *shape, device=rt.device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, n_classes, (cfg.batch_size, *shape[1:]), device=rt.device)
    net.train()
    for i in range(warmup + steps):
        if i == warmup:
            sync(rt.device)
            t0 = time.perf_counter()
        with rt.autocast():
            loss = loss_fn(net(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(rt.device)
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON results")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--chips", type=Path, default=ROOT / "data" / "chips")
    ap.add_argument("--arch", help="preset (default: params arch)")
    ap.add_argument("--batch", type=int, help="default: train.batch_size")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    ap.add_argument("--size", type=int, help="random-crop chips to this size (default: whole chips)")
    ap.add_argument("--steps", type=int, default=50, help="timed optimiser steps")
    ap.add_argument("--warmup", type=int, default=10, help="bare loop warm-up steps")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--repeat", type=int, default=1, help="alternate stage and bare this often; medians")
    args = ap.parse_args()

    params = load_params(args.params)
    arch = args.arch or params.arch
    batch = args.batch or params.train.batch_size
    augment = list(params.train.augment) + ([{"RandomCrop": {"height": args.size, "width": args.size}}]
                                            if args.size else [])
    cfg = params.train.model_copy(update={
        "batch_size": batch, "grad_accum": 1, "samples_per_epoch": args.steps * batch, "epochs": 2,
        "num_workers": args.workers, "device": args.device, "compile": args.compile, "augment": augment})
    stages, bares = [], []
    for _ in range(args.repeat):  # alternated, so that drifts of the machine hit both alike
        stage_ips, shape, n_classes, device = stage(cfg, arch, args.chips)
        if device == "cuda":
            torch.cuda.empty_cache()
        stages.append(stage_ips)
        bares.append(bare(cfg, arch, shape, n_classes, args.steps, args.warmup))
    stage_ips, bare_ips = statistics.median(stages), statistics.median(bares)
    result = {
        "arch": arch, "batch": batch, "input": list(shape), "classes": n_classes, "steps": args.steps,
        "workers": args.workers, "precision": "bf16 autocast" if device == "cuda" else "fp32",
        "channels_last": True, "compile": args.compile, "target": cfg.target, "augment": augment,
        "device_augment": cfg.device_augment.model_dump(),
        "stage_images_per_s": round(stage_ips, 2), "bare_images_per_s": round(bare_ips, 2),
        "ratio": round(stage_ips / bare_ips, 3), "repeats": {"stage": [round(v, 1) for v in stages],
                                                              "bare": [round(v, 1) for v in bares]},
        "command": " ".join(["python", *sys.argv]),
        "machine": {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                    "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"stage {stage_ips:.1f} img/s, bare {bare_ips:.1f} img/s, ratio {stage_ips / bare_ips:.3f} "
          f"({arch}, batch {batch}, {list(shape)}, {result['precision']}, {args.workers} workers)")


if __name__ == "__main__":
    main()
