"""CUDA prediction (skipped without a GPU; run on the H200): graph replay equals the eager forward, page-locked
blocks are reused once their arrays are gone, and the maps streamed through the device match the CPU's."""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from geofoundry.config import PredictConfig
from geofoundry.models.deployed import DeployedModel
from geofoundry.models.input_spec import InputSpec
from geofoundry.models.registry import build_model
from geofoundry.predict.pinned import GRAIN, PinnedPool, block_size
from geofoundry.predict.torch_model import torch_model_fn

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
predict_run = importlib.import_module("geofoundry.predict.run")


def models() -> tuple:
    torch.manual_seed(0)
    deployed = DeployedModel(build_model("unet", 3, 2), [0.0] * 3, [255.0] * 3)
    graphed = torch_model_fn(deployed, "cuda", cuda_graphs=True)
    return graphed, torch_model_fn(deployed, "cuda", cuda_graphs=False), torch_model_fn(copy.deepcopy(deployed), "cpu")


def test_graph_replay_equals_eager_and_outputs_outlive_the_next_replay():
    graphed, eager, _ = models()
    batches = [torch.rand(4, 3, 256, 256, device="cuda") * 255 for _ in range(3)]
    first = graphed(batches[0])
    outs = [graphed(b) for b in batches[1:]]
    for b, out in zip(batches, [first, *outs]):
        assert torch.equal(out, eager(b))
    assert graphed(torch.rand(2, 3, 128, 128, device="cuda")).shape == (2, 2, 128, 128), "a second shape"


def test_pinned_blocks_are_page_locked_and_reused_once_every_view_is_gone():
    pool = PinnedPool()
    a = pool.array(3 * 2**20 + 5)
    first = block_size(a.nbytes)
    assert a.nbytes == 3 * 2**20 + 5 and pool.registered == first == 2 * GRAIN
    assert torch.from_numpy(a).is_pinned()
    source = torch.arange(256, device="cuda").to(torch.uint8).repeat(a.nbytes // 256 + 1)[:a.nbytes]
    torch.from_numpy(a).copy_(source, non_blocking=True)
    torch.cuda.synchronize()
    assert np.array_equal(a, source.cpu().numpy())
    address, view = a.ctypes.data, a[10:20].reshape(2, 5)
    del a
    small = pool.array(100)
    assert small.ctypes.data != address and pool.registered == first + GRAIN, "a view still holds the first block"
    del view
    b = pool.array(first)
    assert b.ctypes.data == address and pool.registered == first + GRAIN, "reused, not registered again"
    del b
    c = pool.array(5 * GRAIN)  # larger than the free block: that one is unregistered and unmapped
    assert pool.registered == block_size(5 * GRAIN) + GRAIN and c.nbytes == 5 * GRAIN
    address, small_address = c.ctypes.data, small.ctypes.data
    del small, c
    assert pool.array(GRAIN + 1).ctypes.data == address, "the smallest free block that fits, wherever it lies"
    assert pool.array(GRAIN).ctypes.data == small_address


def test_predict_scene_with_and_without_graphs_and_on_cpu(dev_root, tmp_path):
    """Same maps with and without graphs; the CPU's (fp32) differ only by bf16 rounding."""
    row = pd.read_csv(dev_root / "scenes.csv").set_index("scene_id").loc["kampala_ug_z19"]
    spec = InputSpec(bands=["red", "green", "blue"], gsd_m=float(row["gsd_m"]), source_dtype="uint8", low=[0.0] * 3,
                     high=[255.0] * 3, classes=["background", "building"], class_paths=[None, "structure/building"])
    maps = []
    for fn, name in zip(models(), ("graphed", "eager", "cpu")):
        out = tmp_path / f"{name}.tif"
        assert predict_run.predict_scene(str(dev_root / row["image"]), row["band_names"].split("|"),
                                         float(row["gsd_m"]), None, spec, fn,
                                         PredictConfig(tile=256, overlap=32, batch_size=4), out)
        with rasterio.open(out) as ds:
            maps.append((ds.read(), ds.dataset_mask()))
    (a, ma), (b, mb), (c, mc) = maps
    assert (ma == mb).all() and ma.any() and np.array_equal(a, b)
    diff = np.abs(a.astype(int) - c.astype(int))[:, ma > 0]
    assert (ma == mc).all() and diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 8, (diff.mean(), diff.max())
