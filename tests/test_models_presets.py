"""Every preset: built, one training step on real chips (CPU), exported to ONNX and checked with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from geofoundry.export.onnx_export import export_onnx
from geofoundry.export.parity import check_parity
from geofoundry.models.compat import AdaptivePool
from geofoundry.models.deployed import DeployedModel
from geofoundry.models.input_spec import InputSpec
from geofoundry.models.registry import PRESETS, build_model
from geofoundry.models.stretch import raw_chips
from geofoundry.pipeline.cli import app
from geofoundry.pipeline.runner import console
from geofoundry.train.augment import build_augment
from geofoundry.train.data import ChipDataset
from geofoundry.train.device import Runtime
from geofoundry.train.loop import train_epoch
from geofoundry.train.losses import WeightedLoss
from geofoundry.train.targets import Target


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, two spinning threads are ~10× slower for these small steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_batches(chips_dir):
    """Two augmented real train chips (targets, device augment parameters), cropped to 64 and to 128 px."""
    spec = InputSpec.load(chips_dir / "stats.json")
    out = {}
    for size in (64, 128):
        augment = build_augment([{"D4": {}}, {"RandomCrop": {"height": size, "width": size}}], spec.ignore_index)
        ds = ChipDataset(chips_dir / "train", Target(len(spec.classes)), spec.ignore_index, augment)
        chips = np.flatnonzero(ds.positive())[:2]
        out[size] = tuple(torch.stack(t) for t in zip(*(ds[(int(i), 7)] for i in chips)))
    return spec, out


def test_registry_has_twenty_presets_with_bricks():
    assert len(PRESETS) >= 20
    assert all(p.bricks and p.name == key for key, p in PRESETS.items())


@pytest.mark.parametrize("size", [(5, 7), (13, 9), (32, 24)])
def test_adaptive_pool_matches_torch(size):
    x = torch.randn(2, 3, *size)
    for out in (2, 3, 6):
        torch.testing.assert_close(AdaptivePool(out)(x), torch.nn.AdaptiveAvgPool2d(out)(x))


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_trains_and_exports(name, real_batches, tmp_path):
    spec, batches = real_batches
    torch.manual_seed(0)
    x, y, params = batches[max(64, PRESETS[name].min_size)]
    model = build_model(name, len(spec.bands), len(spec.classes)).to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    loss_sum, n = train_epoch(model, iter([(x, y, params)]), 1,
                              WeightedLoss({"ce": 1.0, "dice": 1.0}, spec.ignore_index), optimizer, scheduler,
                              Runtime(torch.device("cpu"), 0, 1), grad_accum=1)
    assert n == 2 and np.isfinite(loss_sum)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

    deployed = DeployedModel(model.eval(), spec.low, spec.high)
    export_onnx(deployed, len(spec.bands), tmp_path / "m.onnx", opset=17, metadata={"preset": name})
    parity = check_parity(deployed, tmp_path / "m.onnx", raw_chips(x.numpy(), spec.low, spec.high))
    assert parity["max_abs_diff"] < 1e-4 and parity["mask_agreement"] > 0.999, parity


def test_models_command_lists_every_preset(monkeypatch):
    monkeypatch.setattr(console, "_width", 250)
    result = CliRunner().invoke(app, ["models", "--no-count"])
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in PRESETS)
