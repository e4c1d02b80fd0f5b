"""CUDA training (skipped without a GPU; run on the H200), on real chips: batches held on the GPU and augmented
there are the CPU's; a bf16 run writes fp32 checkpoints that load, resume on the CPU and export to ONNX (checked
with onnxruntime); a compiled run checkpoints the plain model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from geofoundry import train
from geofoundry.config import ExportConfig, TrainConfig
from geofoundry.export.onnx_export import export_onnx
from geofoundry.export.parity import check_parity
from geofoundry.models.checkpoint import load_checkpoint, model_from_checkpoint
from geofoundry.models.deployed import DeployedModel
from geofoundry.models.input_spec import InputSpec
from geofoundry.models.registry import build_model
from geofoundry.models.stretch import raw_chips
from geofoundry.train.device import Runtime
from geofoundry.train.device_augment import apply
from geofoundry.train.loop import to_device
from geofoundry.train.resident import held_bytes, wanted

from .test_resume import finish, kill_after_first_epoch, start
from .test_train_resident import AUGMENT, held_and_loaded

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CPU, GPU = Runtime(torch.device("cpu"), 0, 1), Runtime(torch.device("cuda", 0), 0, 1)
RUN = TrainConfig(epochs=3, samples_per_epoch=16, batch_size=4, lr=5e-3, seed=7, device="cuda", augment=[],
                  target="footprint_border_contact", monitor="val/object_f1",
                  device_augment=AUGMENT.model_dump())  # no noise: it is drawn on each device


def floats(state: dict) -> list[torch.Tensor]:
    return [v for v in state.values() if v.is_floating_point()]


def test_held_batches_and_their_augmentation_on_cuda_are_the_cpus(chips_dir):
    ds, held, pairs = held_and_loaded(chips_dir, GPU.device)
    assert RUN.chips_on_device == "auto" and wanted(RUN, GPU, held_bytes(ds))
    assert held.images.is_cuda and held.targets.is_cuda
    assert len(pairs) == 6
    for (x, y, p), (hx, hy, hp) in pairs:
        assert torch.equal(x, hx.cpu()) and torch.equal(y, hy.cpu()) and torch.equal(p, hp)
        cx, cy = apply(*to_device(x, y, CPU), p, AUGMENT)
        gx, gy = apply(*to_device(hx, hy, GPU), hp, AUGMENT)
        assert gx.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(cy, gy.cpu())
        torch.testing.assert_close(gx.cpu(), cx, rtol=0, atol=1e-6)  # a fused multiply-add may round once less


@pytest.fixture(scope="module")
def cuda_run(chips_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cuda_run")
    return out, train.run(RUN, "unet", chips_dir, out / "models", out / "live")


def test_bf16_run_writes_fp32_checkpoints_that_load_on_the_cpu(cuda_run, chips_dir):
    out, result = cuda_run
    assert math.isfinite(result["last"]["train/loss"]) and 0 <= result["last"]["val/iou"] <= 1
    assert result["last"]["images_per_s"] > 0 and (out / "live" / "metrics.json").is_file()
    last = torch.load(out / "models" / "last.pt", weights_only=True)
    assert last["epoch"] == RUN.epochs and last["done"]
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in floats(last["state_dict"]))
    spec = InputSpec.load(chips_dir / "stats.json")
    model = model_from_checkpoint(load_checkpoint(out / "models" / "best.pt", spec.bands))
    x = torch.from_numpy(np.load(chips_dir / "val" / "images.npy")[:2]).float() / 255
    with torch.inference_mode():
        probs = model(x).softmax(1)
    assert probs.shape == (2, 4, *x.shape[2:]) and torch.isfinite(probs).all()


def test_cuda_checkpoint_exports_to_onnx_with_parity(cuda_run, chips_dir, tmp_path):
    """The annealed last.pt: a checkpoint after one epoch at this run's learning rate is ill-conditioned (PyTorch
    and onnxruntime differ by up to 3e-3 on a pixel or two, on the CPU's checkpoints as well)."""
    out, _ = cuda_run
    spec = InputSpec.load(chips_dir / "stats.json")
    model = DeployedModel(model_from_checkpoint(load_checkpoint(out / "models" / "last.pt", spec.bands)),
                          spec.low, spec.high)
    export_onnx(model, len(spec.bands), tmp_path / "model.onnx", 17, {"geofoundry.preset": "unet"})
    images = np.load(chips_dir / "val" / "images.npy")
    parity = check_parity(model, tmp_path / "model.onnx", raw_chips(images, spec.low, spec.high))
    assert parity["max_abs_diff"] <= ExportConfig().parity_atol and parity["mask_agreement"] == 1.0, parity


def test_run_killed_on_cuda_resumes_on_the_cpu(chips_dir, tmp_path):
    """``device`` is a runtime setting: a GPU run cut short (a lost lease) finishes on the CPU from its last.pt."""
    cfg = RUN.model_copy(update={"epochs": 6})
    killed_at = kill_after_first_epoch(chips_dir, tmp_path, cfg)
    losses = tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv"
    on_gpu = losses.read_text().splitlines()[:1 + killed_at]  # header and the GPU's finished epochs
    log = finish(start(chips_dir, tmp_path, cfg.model_copy(update={"device": "cpu", "threads": 2})))
    assert f"after epoch {killed_at}" in log
    resumed = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    assert resumed["epoch"] == cfg.epochs and resumed["done"]
    rows = losses.read_text().splitlines()
    assert len(rows) == 1 + cfg.epochs and rows[:1 + killed_at] == on_gpu, "continued, not started afresh"


def test_compiled_run_checkpoints_the_plain_model(chips_dir, tmp_path):
    cfg = RUN.model_copy(update={"compile": True, "epochs": 1})
    result = train.run(cfg, "unet", chips_dir, tmp_path / "models", tmp_path / "live")
    assert math.isfinite(result["last"]["train/loss"])
    state = torch.load(tmp_path / "models" / "last.pt", weights_only=True)["state_dict"]
    spec = InputSpec.load(chips_dir / "stats.json")
    build_model("unet", len(spec.bands), 4).load_state_dict(state)  # no `_orig_mod.` prefixes
