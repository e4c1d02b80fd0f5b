"""DDP: the train stage under `torchrun --nproc_per_node 2` on real chips: two CPU processes (gloo) and, where two
GPUs exist (the H200 pair), two GPU processes (NCCL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


TWO_GPUS = [pytest.mark.gpu, pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")]


def torchrun_train(chips_dir: Path, root: Path, **train) -> str:
    """The train stage under ``torchrun --nproc_per_node 2`` in ``root`` with ``train`` settings; its log."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(train)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "data").mkdir()
    (root / "data" / "chips").symlink_to(chips_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "stages" / "03_train.py")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    return log


@pytest.mark.slow  # tens of seconds on two cores
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=TWO_GPUS)])
def test_torchrun_two_processes(chips_dir, tmp_path, device):
    log = torchrun_train(chips_dir, tmp_path, epochs=2, samples_per_epoch=8, batch_size=2, grad_accum=2, threads=1,
                         device=device, num_workers=0, ema=0.9,
                         augment=[{"D4": {}}, {"RandomCrop": {"height": 64, "width": 64}}])
    assert "Traceback" not in log
    # each rank trains on its own half of every epoch; only rank 0 validates, logs epochs and writes files
    assert "rank 0/2: 4 of 8 chips per epoch" in log and "rank 1/2: 4 of 8 chips per epoch" in log
    assert log.count("epoch 1/2 ") == 1 and log.count("epoch 2/2 ") == 1
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.parts)
    assert [p for p in written if p.startswith("models/")] == ["models/best.pt", "models/last.pt"]
    assert "dvclive/train/metrics.json" in written and "params.yaml" in written
    assert len(written) == 2 + 1 + 1 + 8 + 4  # checkpoints, params, metrics.json, 8 metric tables, 4 previews
    last = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["done"] and 0 <= last["metrics"]["val/iou"] <= 1
    assert "trained_state_dict" in last  # rank 0 averaged the weights


@pytest.mark.slow  # tens of seconds on two cores
def test_frozen_encoder_thaws_under_ddp(chips_dir, tmp_path):
    """The encoder frozen for the first epoch, then reduced with the rest by a DDP wrapped again."""
    from geofoundry.models.encoder_file import load_encoder, save_encoder
    from geofoundry.models.registry import build_model

    save_encoder(tmp_path / "init" / "enc.safetensors", build_model("unet", 3, 2).encoder, encoder_name="resnet18",
                 bands=["red", "green", "blue"], gsd_m=0.3, method="", source="test")
    log = torchrun_train(chips_dir, tmp_path, epochs=2, samples_per_epoch=8, batch_size=2, threads=1, device="cpu",
                         init_from="init/enc.safetensors", freeze_encoder_epochs=1)
    assert "encoder frozen from epoch 1" in log and "encoder trained from epoch 2" in log
    given, _ = load_encoder(tmp_path / "init" / "enc.safetensors")
    last = torch.load(tmp_path / "models" / "last.pt", weights_only=True)["state_dict"]
    assert not torch.equal(last["encoder.conv1.weight"], given["conv1.weight"])
