"""The pretrain stage: a self-supervised method (``pretrain.method``) learns the ``arch`` preset's encoder on tiles
of the scenes, and the encoder is written as an encoder weights file (``models.encoder_file``) that
``train.init_from`` takes. ``pretrain.epochs: 0`` (the default) writes only a summary saying nothing was learnt."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..config import PreprocessConfig, PretrainConfig
from ..io.atomic import atomic_path, write_json
from ..models.encoder_file import save_encoder
from ..models.input_spec import InputSpec
from ..models.registry import build_model, get_preset
from ..progress import task
from ..train.device import Runtime, setup
from ..train.optim import SCHEDULES
from ..train.tracking import open_live
from .ground import Ground, read_ground
from .methods import METHODS
from .views import two_views

log = logging.getLogger(__name__)
ENCODER_FILE = "encoder.safetensors"
SUMMARY_FILE = "summary.json"


def run(cfg: PretrainConfig, arch: str, pcfg: PreprocessConfig, raw_root: Path, selection_dir: Path,
        stats_path: Path, out_dir: Path, live_dir: Path | None) -> dict:
    """Write ``out_dir/encoder.safetensors`` and ``out_dir/summary.json``; the loss per epoch to dvclive in
    ``live_dir`` (None, or dvclive not installed: logged only)."""
    if cfg.epochs == 0:
        summary = {"pretrained": False, "why": "pretrain.epochs is 0: nothing was pretrained"}
        _write(out_dir, live_dir, summary, {"epochs": 0})
        log.info("pretrain: off (pretrain.epochs: 0); %s says so", out_dir / SUMMARY_FILE)
        return summary
    spec = InputSpec.load(stats_path)
    ground = read_ground(raw_root, selection_dir, spec.stretch, pcfg, cfg)
    rt = setup(cfg.device, cfg.threads)
    encoder = build_model(arch, len(spec.bands), len(spec.classes)).encoder
    model, losses, seconds = learn(encoder, ground, cfg, rt, live_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        save_encoder(tmp / ENCODER_FILE, model.encoder.cpu(), encoder_name=get_preset(arch).encoder,
                     bands=spec.bands, gsd_m=spec.gsd_m, method=cfg.method,
                     source=f"geofoundry pretrain: {cfg.method}, {cfg.epochs} epochs on {len(ground.tiles)} tiles of "
                            f"{ground.index['scene_id'].nunique()} scenes")
        summary = {"pretrained": True, "file": ENCODER_FILE, "arch": arch, "encoder": get_preset(arch).encoder,
                   "method": cfg.method, "epochs": cfg.epochs, "tiles": len(ground.tiles),
                   "scenes": sorted(ground.index["scene_id"].unique()), "eval_ground": cfg.include_eval_ground,
                   "loss": losses, "seconds": round(seconds, 1)}
        write_json(tmp / SUMMARY_FILE, summary)
    if live_dir is not None:  # in place of dvclive's: the first and last epoch's loss
        write_json(live_dir / "metrics.json", {"loss": losses[-1], "first_loss": losses[0], "epochs": cfg.epochs,
                                               "tiles": len(ground.tiles)})
    log.info("pretrain: loss %.4f → %.4f over %d epochs; %s", losses[0], losses[-1], cfg.epochs, out_dir / ENCODER_FILE)
    return summary


def learn(encoder: torch.nn.Module, ground: Ground, cfg: PretrainConfig, rt: Runtime,
          live_dir: Path | None) -> tuple[torch.nn.Module, list[float], float]:
    """Train ``encoder`` with the method; returns the method's module, the mean loss of each epoch and seconds."""
    torch.manual_seed(cfg.seed)
    device = rt.device
    model = METHODS[cfg.method](encoder, cfg).to(device).to(memory_format=torch.channels_last).train()
    steps = max(1, cfg.samples_per_epoch // cfg.batch_size)
    batch = min(cfg.batch_size, len(ground.tiles))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = SCHEDULES["cosine"](optimizer, cfg.lr, cfg.epochs * steps)
    tiles = torch.from_numpy(ground.tiles).to(device)
    live = open_curves(live_dir)
    losses, t0 = [], time.perf_counter()
    try:
        for epoch in range(cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            total = torch.zeros((), device=device)
            with task(f"pretrain epoch {epoch + 1}/{cfg.epochs}", steps) as bar:
                for _ in range(steps):
                    pick = torch.from_numpy(rng.choice(len(tiles), batch, replace=False)).to(device)
                    v1, v2 = two_views(tiles[pick], rng, cfg.view_px, cfg.scale, cfg.device_augment)
                    with rt.autocast():
                        loss = model.loss(v1, v2)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    done = loss.detach()
                    total += done
                    bar.advance(1, lambda d=done: f"loss {float(d):.4f}")
            losses.append(float(total) / steps)
            log.info("pretrain epoch %d/%d: loss %.4f", epoch + 1, cfg.epochs, losses[-1])
            if live is not None:
                live.log_metric("loss", losses[-1])
                live.log_metric("lr", scheduler.get_last_lr()[0])
                live.next_step()
    finally:
        if live is not None:
            live.end()
    return model, losses, time.perf_counter() - t0


def open_curves(live_dir: Path | None):
    """A dvclive ``Live`` writing into ``live_dir`` afresh (the train stage's :func:`open_live`); None without a
    folder or without dvclive."""
    if live_dir is None:
        return None
    shutil.rmtree(live_dir, ignore_errors=True)
    return open_live(live_dir, 0)


def _write(out_dir: Path, live_dir: Path | None, summary: dict, metrics: dict) -> None:
    """The outputs of a run that learnt nothing: the summary, the metrics and an empty curves folder."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        write_json(tmp / SUMMARY_FILE, summary)
    if live_dir is not None:
        shutil.rmtree(live_dir, ignore_errors=True)
        (live_dir / "plots" / "metrics").mkdir(parents=True)
        write_json(live_dir / "metrics.json", metrics)
