"""Training on real chips: checkpoints load weights-only, are checked, and runs are reproducible."""

from __future__ import annotations

import json

import pytest
import torch

from geofoundry import train
from geofoundry.config import TrainConfig
from geofoundry.errors import GeofoundryError
from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint


def test_checkpoint_loads_weights_only_with_metadata(tiny_model):
    ckpt = torch.load(tiny_model, weights_only=True)
    assert ckpt["preset"] == "unet" and ckpt["bands"] == ["red", "green", "blue"]
    assert ckpt["classes"] == ["background", "building"]
    model = model_from_checkpoint(load_checkpoint(tiny_model, ["red", "green", "blue"]))
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_checkpoint_refuses_other_bands(tiny_model):
    with pytest.raises(GeofoundryError, match="trained on bands"):
        load_checkpoint(tiny_model, ["nir1", "red", "green", "blue"])


def test_checkpoint_refuses_unknown_preset(tiny_model, tmp_path):
    ckpt = torch.load(tiny_model, weights_only=True)
    ckpt["preset"] = "mystery-net"
    torch.save(ckpt, tmp_path / "x.pt")
    with pytest.raises(GeofoundryError, match="unknown preset 'mystery-net'"):
        load_checkpoint(tmp_path / "x.pt")


def test_dvclive_metrics_are_written(tiny_model):
    metrics = json.loads((tiny_model.parents[1] / "dvclive" / "metrics.json").read_text())
    for key in ("train/loss", "val/iou", "val/f1", "val/object_f1", "lr", "images_per_s"):
        assert key in metrics or key.split("/")[1] in metrics.get(key.split("/")[0], {}), metrics


def test_same_seed_same_weights(chips_dir, tmp_path):
    cfg = TrainConfig(epochs=1, samples_per_epoch=4, batch_size=2, threads=1)
    for name in ("a", "b"):
        train.run(cfg, "linknet", chips_dir, tmp_path / name, tmp_path / f"live-{name}")
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
