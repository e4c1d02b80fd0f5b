"""Train-stage throughput against a bare segmentation_models_pytorch loop, in one run.

* stage: ``geofoundry.train`` as the stage runs it — real chips, the seeded sampler, the batches (held on the
  device and gathered there when ``train.chips_on_device`` resolves so; else the DataLoader: memory-mapped chips,
  workers, pinned memory, prefetch), the params' augmentations (albumentations in the workers, ``device_augment``
  on the batch) and target, and ``train_epoch`` (uint8 → device, bf16 autocast on CUDA, channels_last, loss,
  optimiser, schedule, and the weight average's update after each step when ``train.ema`` is set);
* bare: the same preset, batch, input size, loss and optimiser on GPU-resident random tensors, nothing else.

Both live in one process and run in turn, a block of ``--block`` optimiser steps each (the stage: one epoch),
``--rounds`` times after a warm-up round (workers, cuDNN autotuning, ``torch.compile``), so that drifts of the
machine hit both alike. Validation is left out of both. Prints and writes the ratio stage/bare of the images/s
over all rounds, and each round's.

    python bench/train.py --out bench-train.json                        # CUDA; params.yaml and data/chips
    python bench/train.py --batch 32 --block 50 --rounds 8 --out b.json
    python bench/train.py --batch 32 --ema 0.999 --out b-ema.json      # the cost of train.ema's update
    python bench/train.py --device cpu --block 2 --rounds 2 --batch 2 --size 64 --out /tmp/b.json   # CPU smoke
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("geofoundry") is None:
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from geofoundry.models.registry import build_model  # noqa: E402
from geofoundry.pipeline.params import load_params  # noqa: E402
from geofoundry.train.data import ChipDataset  # noqa: E402
from geofoundry.train.device import setup  # noqa: E402
from geofoundry.train.loop import train_epoch  # noqa: E402
from geofoundry.train.losses import WeightedLoss  # noqa: E402
from geofoundry.train.optim import make_optimizer  # noqa: E402
from geofoundry.train.resident import ResidentBatches  # noqa: E402
from geofoundry.train.run import average_step, prepare, weight_average  # noqa: E402
from geofoundry.train.state import seed_epoch  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn) -> tuple[int, float]:
    """(images, seconds) of ``fn``, the device's queue drained before and after."""
    sync(device)
    t0 = time.perf_counter()
    n = fn()
    sync(device)
    return n, time.perf_counter() - t0


class Stage:
    """The stage's training, as ``train.run`` drives it: one iterator over the run's batches, ``train_epoch``."""

    def __init__(self, cfg, arch: str, chips: Path, rt):
        self.cfg, self.rt, self.job = cfg, rt, prepare(cfg, arch, chips, rt)
        self.job.sampler.set_epochs(0, cfg.epochs)
        self.batches, self.epoch = iter(self.job.batches), 0
        self.held = isinstance(self.job.batches, ResidentBatches)
        self.classes = len(self.job.target.names(self.job.spec.classes))
        self.ema = weight_average(self.job.model, cfg.ema) if cfg.ema else None

    def run_block(self) -> int:
        """One stage epoch (``--block`` steps); returns its images."""
        seed_epoch(self.cfg.seed, self.epoch, self.rt.rank)
        self.epoch += 1
        job = self.job
        return train_epoch(job.net, self.batches, job.sampler.steps, job.loss_fn, job.optimizer, job.scheduler,
                           self.rt, self.cfg.grad_accum, self.cfg.device_augment,
                           average_step(self.ema, job.model, job.scheduler))[1]


class Bare:
    """Forward + loss + backward + the params' optimiser on GPU-resident random tensors (bf16 autocast on CUDA),
    nothing else."""

    def __init__(self, cfg, arch: str, shape: tuple[int, int, int], n_classes: int, rt):
        self.rt, self.steps = rt, cfg.samples_per_epoch // cfg.batch_size
        model = build_model(arch, shape[0], n_classes).to(rt.device, memory_format=torch.channels_last)
        self.net = torch.compile(model) if cfg.compile else model
        self.optimizer = make_optimizer(cfg, model.parameters())
        self.loss_fn = WeightedLoss(cfg.loss, 255)
        self.x = torch.rand(cfg.batch_size, *shape, device=rt.device).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, n_classes, (cfg.batch_size, *shape[1:]), device=rt.device)
        self.net.train()

    def run_block(self) -> int:
        """``--block`` steps; returns their images."""
        for _ in range(self.steps):
            with self.rt.autocast():
                loss = self.loss_fn(self.net(self.x).float(), self.y)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return self.steps * len(self.x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="JSON results")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--chips", type=Path, default=ROOT / "data" / "chips")
    ap.add_argument("--arch", help="preset (default: params arch)")
    ap.add_argument("--batch", type=int, help="default: train.batch_size")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    ap.add_argument("--size", type=int, help="random-crop chips to this size (default: whole chips)")
    ap.add_argument("--block", type=int, default=50, help="optimiser steps per timed block (a stage epoch)")
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds: a stage block, then a bare block")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--chips-on-device", default="auto", choices=["auto", "true", "false"],
                    help="train.chips_on_device (auto: on CUDA without --size)")
    ap.add_argument("--ema", type=float, help="train.ema, the weight average's decay (default: params; 0 = off)")
    args = ap.parse_args()

    params = load_params(args.params)
    arch = args.arch or params.arch
    batch = args.batch or params.train.batch_size
    augment = list(params.train.augment) + ([{"RandomCrop": {"height": args.size, "width": args.size}}]
                                            if args.size else [])
    cfg = params.train.model_copy(update={
        "batch_size": batch, "grad_accum": 1, "samples_per_epoch": args.block * batch, "epochs": args.rounds + 1,
        "num_workers": args.workers, "device": args.device, "compile": args.compile, "augment": augment,
        "chips_on_device": {"true": True, "false": False}.get(args.chips_on_device, "auto"),
        "ema": params.train.ema if args.ema is None else args.ema})
    rt = setup(cfg.device, cfg.threads)
    stage = Stage(cfg, arch, args.chips, rt)
    shape = (len(stage.job.spec.bands), *(args.size or ChipDataset.size(args.chips / "train"),) * 2)
    bare = Bare(cfg, arch, shape, stage.classes, rt)
    stage.run_block(), bare.run_block()  # warm-up: workers, cuDNN autotuning, torch.compile
    rounds = []  # (stage images, seconds, bare images, seconds)
    for _ in range(args.rounds):  # interleaved, so that drifts of the machine hit both alike
        rounds.append((*timed(rt.device, stage.run_block), *timed(rt.device, bare.run_block)))
    stage_ips = sum(r[0] for r in rounds) / sum(r[1] for r in rounds)
    bare_ips = sum(r[2] for r in rounds) / sum(r[3] for r in rounds)
    per_round = [(r[0] / r[1]) / (r[2] / r[3]) for r in rounds]
    result = {
        "arch": arch, "batch": batch, "input": list(shape), "classes": stage.classes, "block_steps": args.block,
        "rounds": args.rounds, "workers": args.workers,
        "precision": "bf16 autocast" if rt.cuda else "fp32", "channels_last": True, "compile": args.compile,
        "target": cfg.target, "augment": augment, "device_augment": cfg.device_augment.model_dump(),
        "chips_on_device": stage.held, "ema": cfg.ema,
        "stage_images_per_s": round(stage_ips, 2), "bare_images_per_s": round(bare_ips, 2),
        "ratio": round(stage_ips / bare_ips, 3), "round_ratios": [round(v, 3) for v in per_round],
        "command": " ".join(["python", *sys.argv]),
        "machine": {"device": torch.cuda.get_device_name() if rt.cuda else "cpu",
                    "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"stage {stage_ips:.1f} img/s, bare {bare_ips:.1f} img/s, ratio {stage_ips / bare_ips:.3f} "
          f"(rounds {min(per_round):.3f}–{max(per_round):.3f}; {arch}, batch {batch}, {list(shape)}, "
          f"{result['precision']}, " + (f"ema {cfg.ema}, " if cfg.ema else "")
          + ("chips on the device)" if stage.held else f"{args.workers} workers)"))


if __name__ == "__main__":
    main()
