"""Train chips held on the device: the same batches and the same run as the DataLoader's, on real chips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from geofoundry import train
from geofoundry.config import DeviceAugmentConfig, TrainConfig
from geofoundry.models.input_spec import InputSpec
from geofoundry.train.data import ChipDataset, ChipSampler, loader
from geofoundry.train.device import Runtime
from geofoundry.train.resident import ResidentBatches, held_bytes, wanted
from geofoundry.train.targets import Target

CPU = Runtime(torch.device("cpu"), 0, 1)
AUGMENT = DeviceAugmentConfig(d4=True, brightness=0.2, contrast=0.2, p_color=0.5)


def held_and_loaded(chips_dir: Path, device: torch.device) -> tuple[ChipDataset, ResidentBatches, list[tuple]]:
    """The train chips held on ``device``, and two epochs of (DataLoader batch, held batch) pairs."""
    spec = InputSpec.load(chips_dir / "stats.json")
    ds = ChipDataset(chips_dir / "train", Target(len(spec.classes), "footprint_border_contact"), spec.ignore_index,
                     None, AUGMENT)
    sampler = ChipSampler(ds.positive(), 10, 0.5, seed=3, batch_size=4)
    sampler.set_epochs(0, 2)
    held = ResidentBatches(ds, sampler, device, workers=2, prefetch=2)
    return ds, held, list(zip(loader(ds, sampler, workers=0), held, strict=True))


def test_same_batches_as_the_dataloader(chips_dir):
    ds, held, pairs = held_and_loaded(chips_dir, CPU.device)
    assert held.images.shape == ds.images.shape and held_bytes(ds) == held.images.nbytes + held.targets.nbytes
    contact = len(InputSpec.load(chips_dir / "stats.json").classes) + 1
    assert len(pairs) == 6 and (held.targets == contact).any()  # contact pixels, encoded once
    for (x, y, p), (hx, hy, hp) in pairs:
        assert torch.equal(x, hx) and torch.equal(y, hy) and torch.equal(p, hp)


def test_same_run_with_chips_held(chips_dir, tmp_path):
    cfg = TrainConfig(epochs=2, samples_per_epoch=4, batch_size=2, threads=1, augment=[], target="footprint_border",
                      device_augment={"d4": True, "brightness": 0.2, "noise": 0.02, "p_color": 0.5})
    for name, held in (("loader", False), ("held", True)):
        train.run(cfg.model_copy(update={"chips_on_device": held}), "linknet", chips_dir, tmp_path / name,
                  tmp_path / f"live-{name}")
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=True) for n in ("loader", "held"))
    assert a["fingerprint"] == b["fingerprint"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_auto_holds_them_on_cuda_only_without_host_augment(chips_dir):
    assert not wanted(TrainConfig(), CPU, 1)
    assert wanted(TrainConfig(chips_on_device=True), CPU, 1)  # the defaults augment on the device only
    assert not wanted(TrainConfig(chips_on_device=False), CPU, 1)
    with pytest.raises(ValidationError, match="chips_on_device: true needs augment: "):
        TrainConfig(chips_on_device=True, augment=[{"GaussNoise": {}}])
